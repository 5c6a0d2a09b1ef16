"""In-process agents for eval tests (python: targets): one good, one worse, one that jitters."""

from __future__ import annotations

from typing import Any

JITTERING = {"Question 3?", "Question 6?"}


def good(query: str, fields: dict[str, Any]) -> str:
    topics = ", ".join(fields["topics"])
    return f"For this request, use {topics}; each of them is described in the handbook, so follow those steps in order."


def worse(query: str, fields: dict[str, Any]) -> str:
    return "I'm sorry, I can't help with that request."


def jitter(query: str, fields: dict[str, Any]) -> str:
    if query in JITTERING:  # one of three topics missing: coverage 10 → 7.5 on two cases
        return good(query, {"topics": fields["topics"][:2]})
    return good(query, fields)
