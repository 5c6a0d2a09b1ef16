"""Users' feedback on runs: the items clients post (``items.py``)."""
