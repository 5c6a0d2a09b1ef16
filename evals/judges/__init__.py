"""Judges: the heuristic judge, the LLM judges (OpenAI-compatible, Glean) and their scores."""
