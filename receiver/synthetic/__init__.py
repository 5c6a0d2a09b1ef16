"""The ``synthetic`` receiver: scheduled eval runs inside ``serve``.

The factory (``TYPE``, ``Config``, ``create``) is in ``receiver``; importing this
package imports nothing else, so its small modules can be used without loading the rest."""
