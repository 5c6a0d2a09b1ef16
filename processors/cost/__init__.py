"""The ``cost`` processor: ``cost_usd`` of every priced LLM span, and ``cost_source`` saying where
it came from (reported by the span, computed here, or unknown).

The factory (``TYPE``, ``Config``, ``create``) is in ``factory``; importing this package imports
nothing else."""
