"""The ``classify`` processor: a failure type per span, from rules (``failure_rules.yaml``).

The factory (``TYPE``, ``Config``, ``create``) is in ``processor``; importing this
package imports nothing else, so its small modules can be used without loading the rest."""
