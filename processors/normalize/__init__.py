"""The ``normalize`` processor: OTLP requests → canonical span rows, decoded column by column.

The factory (``TYPE``, ``Config``, ``create``) is in ``processor``; importing this
package imports nothing else, so its small modules can be used without loading the rest."""
