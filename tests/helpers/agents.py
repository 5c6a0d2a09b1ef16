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


POLICY = "Expenses are filed in Concur within 30 days; a manager approves each report."


def retrieving(query: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Searches the policy, then answers from it (case "grounded") or from thin air."""
    answer = (
        "File expenses in Concur within 30 days; a manager approves each report."
        if fields.get("grounded")
        else "Submit a paper form to the travel desk, who reimburse by cheque."
    )
    search = {"name": "search", "arguments": {"q": query}, "output": POLICY}
    return {"output": answer, "tool_calls": [search]}


PAIRED: dict[str, Any] = {}


def paired(query: str, fields: dict[str, Any]) -> str:
    """Waits until a second case is in flight too, and records how many ever were at once."""
    state = PAIRED
    with state["lock"]:
        state["active"] += 1
        state["most"] = max(state["most"], state["active"])
    try:
        state["barrier"].wait()
    finally:
        with state["lock"]:
            state["active"] -= 1
    return "done"


def priced(query: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``good``'s answer, reporting the tokens it spent on a model only the config prices."""
    return {"output": good(query, fields), "usage": {"input_tokens": 1000, "output_tokens": 200},
            "model": "acme-llm"}  # fmt: skip
