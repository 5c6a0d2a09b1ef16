"""A sample agent for ``python:`` eval targets: ``agentwatch eval run --target
python:expense_agent:answer --dataset expense_eval.csv`` from this directory (no ``PYTHONPATH``
needed), or ``python:examples/expense_agent.py:answer`` from anywhere.

An eval target is any callable ``f(query: str, fields: dict) -> str | dict``. Return the answer,
or a dict with ``output`` and, when the agent has them, ``tool_calls`` (``name``, ``arguments``,
``output``) and ``citations``: the judges score groundedness against what the tools returned.
An exception is recorded as the case's error.
"""

from __future__ import annotations

from typing import Any

POLICY = {
    "expense report": "File expense reports in Concur within 30 days; attach itemised receipts "
    "and name every attendee of a business meal.",
    "per-diem": "The UK per-diem is 75 GBP a day and covers breakfast, lunch and dinner.",
    "home office": "Home office equipment needs your manager's pre-approval and is capped at "
    "300 USD a year by the equipment policy.",
    "rejected": "Open the report in Concur to read the rejection reason, fix what it names and resubmit it.",
    "approve": "Expenses above 5000 USD need the department head's approval after the manager's.",
}


def answer(query: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Looks the question up in the policy (the 'tool'), then answers from what it found."""
    text = query.lower()
    found = [rule for key, rule in POLICY.items() if any(word in text for word in key.split())]
    lookup = {"name": "search_policy", "arguments": {"query": query}, "output": " ".join(found) or "no match"}
    if not found:
        return {"output": "I could not find that in the expense policy.", "tool_calls": [lookup]}
    return {"output": " ".join(found), "tool_calls": [lookup], "citations": ["policy://expenses"]}
