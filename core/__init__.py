"""The ground floor: types, errors, protocols and small helpers every other package shares.

It imports nothing else from the project (``tests/test_layers.py`` checks it)."""
