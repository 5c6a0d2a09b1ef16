"""The failure taxonomy: every built-in failure type, what it means and what detects it.

The taxonomy is open: a classify rule (``processors.classify.rules``, ``rules_file``) may name a
failure type of its own (``jira_outage``); it then appears in ``spans``, ``runs``, the report,
signals and alerts like a built-in one. A type's name is lowercase letters, digits and ``_``
(``NAME_PATTERN``), so it reads the same in SQL, YAML, Slack and URLs.

Detectors: ``rule <name>`` is a rule of ``failure_rules.yaml`` (over span columns, attributes
and messages as the instrumentations send them); ``judge`` marks runs after the fact
(``evals.judges.marks``, rows of ``run_marks``); ``loop detection`` is the classify processor's
own check; the README's "Failure types" table is this list (a test keeps them equal).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storage.runs import GENERIC_FAILURE

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class FailureType:
    name: str
    meaning: str
    detector: str


TAXONOMY: tuple[FailureType, ...] = (
    FailureType(
        "timeout",
        "a call ran out of time",
        "rule `timeout` (timeout wording, exception types, HTTP 408, gRPC 4)",
    ),
    FailureType(
        "rate_limit",
        "the provider or service throttled the call",
        "rule `rate_limit` (HTTP 429, gRPC 8, rate-limit and throttling wording, per-minute quotas)",
    ),
    FailureType(
        "quota_exceeded",
        "the account's quota, credit or billing limit is used up",
        "rule `quota_exceeded` (insufficient_quota, billing, credit balance)",
    ),
    FailureType(
        "auth_failed",
        "the call was refused for its credentials or permissions",
        "rule `auth_failed` (HTTP 401/403, gRPC 7/16, invalid API key, permission denied)",
    ),
    FailureType(
        "tool_error",
        "a tool or MCP tool ran and failed",
        "rules `tool_error_reported` (JSON-RPC error, MCP `isError`) and `tool_error` (a failed tool span)",
    ),
    FailureType(
        "tool_timeout",
        "a tool or MCP tool call ran out of time",
        "rule `tool_timeout` (timeout evidence on a tool span)",
    ),
    FailureType(
        "tool_contract_mismatch",
        "a tool was called with arguments its schema rejects",
        "rule `tool_contract_mismatch` (JSON-RPC -32602/-32601, validation errors, missing or unexpected "
        "arguments)",
    ),
    FailureType(
        "tool_selection_error",
        "the model called a tool the agent does not have",
        "rule `tool_selection_error` (`Tool X not found in agent Y`, `Unknown tool: X`, "
        "`is not a valid tool`)",
    ),
    FailureType(
        "dependency_unavailable",
        "a service the span called failed or could not be reached, a model provider's HTTP 5xx included",
        "rules `dependency_unavailable_status` (HTTP 500/502/503/504/529, gRPC 13/14) and "
        "`dependency_unavailable` (connection errors, `InternalServerError`, `Error code: 500`, "
        "overloaded, Bedrock/Vertex server exceptions)",
    ),
    FailureType(
        "bad_routing",
        "a router or handoff sent the request nowhere, or to an agent that does not exist",
        "rule `bad_routing` (`Multiple handoffs requested`, unknown agent/route/handoff, a failed "
        "`transfer_to_*` handoff tool)",
    ),
    FailureType(
        "approval_timeout",
        "a human approval or confirmation the agent waited for never came",
        "rule `approval_timeout` (approval timed out/expired, timed out waiting for approval)",
    ),
    FailureType(
        "policy_blocked",
        "the deployment's own guardrail or policy stopped the request or the answer",
        "rules `policy_blocked_finish_reason` (`guardrail_intervened`) and `policy_blocked` "
        "(guardrail tripwires, policy violations, blocked by policy)",
    ),
    FailureType(
        "blocked_response",
        "the model provider's safety system filtered the answer, or the model refused",
        "rules `blocked_finish_reason` (content_filter, safety, recitation), `blocked_by_policy` "
        "(content filters, moderation) and `refusal` (refusal wording at the start of an answer)",
    ),
    FailureType(
        "unsafe_output",
        "an answer carried a secret (a private key, a cloud or API access key)",
        "rule `unsafe_output` (secret patterns in the output text of agent and model spans); other "
        "unsafe content: your own rules",
    ),
    FailureType(
        "missing_context",
        "the agent lacked the information to answer: its retrieval found nothing, or it says so",
        "rules `missing_context` (answers such as `I don't have enough information`) and "
        "`empty_retrieval` (a retrieval that returned nothing)",
    ),
    FailureType(
        "empty_response",
        "a run or model call succeeded with a blank answer",
        "rules `empty_response` and `empty_output_attribute`",
    ),
    FailureType(
        "invalid_json",
        "output requested as JSON does not parse",
        "rule `invalid_json` (`gen_ai.output.type` json, `response_format` json, Gemini "
        "`response_mime_type`)",
    ),
    FailureType(
        "context_overflow",
        "the prompt exceeded the model's context window",
        "rule `context_overflow` (context length exceeded, prompt too long, too many tokens)",
    ),
    FailureType(
        "loop_detected",
        "the same tool was called with the same arguments again and again in one run",
        "loop detection (`loop_threshold`, default 3)",
    ),
    FailureType(
        "groundedness_drop",
        "a judge found the answer not grounded in what the run retrieved",
        "judge: groundedness under `evals.groundedness_threshold` (`run_marks`)",
    ),
    FailureType(
        "quality_regression",
        "a judge scored the run under the quality thresholds",
        "judge: a score under `evals.quality_thresholds` (`run_marks`)",
    ),
    FailureType(
        GENERIC_FAILURE,
        "a span failed and no rule names why",
        f"rule `{GENERIC_FAILURE}` (any error status)",
    ),
)

FAILURE_TYPES: tuple[str, ...] = tuple(t.name for t in TAXONOMY)
"""The built-in failure types; rules may add their own."""


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be a failure type, or None when it can."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        return (
            f"{name!r} is not a failure type name (lowercase letters, digits and _, starting with a "
            "letter, at most 64 characters: a built-in type or a new one, e.g. 'jira_outage')"
        )
    return None
