"""Where money leaks, per agent: spend that bought nothing, ranked.

Over the model and tool calls (spans) of a window's production runs (the same calls and costs as
the ``usage`` view and the cost report), each agent's spend on:

- **failed runs**: every call of a run whose outcome is ``failure``;
- **retries**: a call repeated identically in one run (the same model or tool and the same
  input text): every copy after the first;
- **loops**: the calls of runs with a span classified ``loop_detected`` (the classify
  processor's loop rule);
- **oversized contexts**: calls whose input is over ``OVERSIZED_FACTOR`` times the agent's
  median input in the window (and at least ``OVERSIZED_MIN_TOKENS``): the input beyond the
  median, at the call's own price per input token;
- **unused tool output**: tool calls whose output shares no word of ``WORD_LETTERS`` or more
  letters with the run's answer (runs with an answer only, neither failed nor looping: those count
  whole already). A tool call costs no tokens itself; what its output costs is the input it fed
  the model: ``len(output) / CHARS_PER_TOKEN`` tokens at the run's average price per input token,
  at most the run's model spend (an estimate, said as such).

``wasted_usd`` counts each call once, whichever of failed, retried, looping or oversized it is
(the oversized part only, for a call that is only oversized), plus the unused tool output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.model import LLM_OPERATIONS, TOOL_OPERATIONS
from feedback.implicit import words_sql
from storage.runcache import Derived, derived_rows
from storage.runs import FAILED_SQL, RunSet, sql_list

LEAK_BASE = ("tenant", "agent", "trace_id", "start_time", "synthetic", "span_id", "outcome")
"""The base columns of runs the leaks read (``runs_in``'s ``base``; with ``agent_name`` as extra)."""
OVERSIZED_FACTOR = 3.0
OVERSIZED_MIN_TOKENS = 1000
WORD_LETTERS = 5
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True)
class Leak:
    tenant: str
    agent: str
    agent_name: str | None
    """The name shown beside an agent's id (``agent`` is the id when it has one)."""
    runs: int
    spend_usd: float
    failed_runs_usd: float
    retries_usd: float
    retried_calls: int
    loops_usd: float
    oversized_usd: float
    oversized_calls: int
    unused_tool_calls: int
    unused_tool_output_usd: float
    """An estimate (see the module's doc)."""
    wasted_usd: float

    @property
    def wasted_share(self) -> float | None:
        return self.wasted_usd / self.spend_usd if self.spend_usd else None


_CALLS = f"""
leak_runs_in AS (
    SELECT tenant, trace_id, span_id AS run_span_id, {FAILED_SQL} AS failed, agent FROM __RUNS__
),
calls AS (
    SELECT s.tenant, s.trace_id, s.span_id, s.operation, coalesce(s.model, s.tool_name, s.name) AS callee,
           CASE WHEN s.input_text IS NOT NULL THEN hash(s.input_text) END AS input_hash,
           CASE WHEN s.operation IN ({sql_list(TOOL_OPERATIONS)}) AND s.output_text <> ''
                THEN s.output_text END AS tool_output,
           coalesce(s.input_tokens, 0) AS input_tokens, coalesce(s.cost_usd, 0) AS cost, r.agent, r.failed
    FROM __SPANS__ s JOIN leak_runs_in r ON r.tenant = s.tenant AND r.trace_id = s.trace_id
    WHERE s.operation IN ({sql_list((*LLM_OPERATIONS, *TOOL_OPERATIONS))})
),
loops AS (
    SELECT DISTINCT tenant, trace_id FROM __SPANS__ WHERE failure_type = 'loop_detected'
),
-- A call repeated with the same input in one run: every copy after the first is a retry.
repeated AS (
    SELECT tenant, trace_id, operation, callee, input_hash, min(span_id) AS first FROM calls
    WHERE input_hash IS NOT NULL GROUP BY ALL HAVING count(*) > 1
),
flagged AS (
    SELECT c.*, coalesce(c.span_id <> d.first, false) AS retried, l.trace_id IS NOT NULL AS looping
    FROM calls c LEFT JOIN repeated d USING (tenant, trace_id, operation, callee, input_hash)
    LEFT JOIN loops l USING (tenant, trace_id)
),
-- The answers of runs with tool output only (the run span's output text).
answers AS (
    SELECT s.tenant, s.trace_id, {words_sql("s.output_text", WORD_LETTERS)} AS words
    FROM __SPANS__ s JOIN leak_runs_in r
        ON r.tenant = s.tenant AND r.trace_id = s.trace_id AND r.run_span_id = s.span_id
    WHERE s.output_text IS NOT NULL
      AND (s.tenant, s.trace_id) IN (SELECT (tenant, trace_id) FROM calls WHERE tool_output IS NOT NULL)
),
run_price AS (
    SELECT tenant, trace_id, sum(cost) / nullif(sum(input_tokens), 0) AS per_input_token,
           sum(cost) AS input_cost
    FROM calls WHERE operation IN ({sql_list(LLM_OPERATIONS)}) GROUP BY tenant, trace_id
),
-- Unused tool output of runs not looping (counted whole already), at most the run's input cost.
unused_per_run AS (
    SELECT t.tenant, t.trace_id, count(*) AS calls,
           least(coalesce(sum(length(t.tool_output) / {CHARS_PER_TOKEN} * p.per_input_token), 0),
                 any_value(p.input_cost)) AS usd
    FROM calls t JOIN answers a USING (tenant, trace_id) LEFT JOIN run_price p USING (tenant, trace_id)
    WHERE t.tool_output IS NOT NULL
      AND (t.tenant, t.trace_id) NOT IN (SELECT (tenant, trace_id) FROM loops)
      AND len(list_intersect({words_sql("t.tool_output", WORD_LETTERS)}, a.words)) = 0
    GROUP BY ALL
)"""
"""The model and tool calls of the runs of ``__RUNS__`` among the spans of ``__SPANS__``, each
flagged retried or looping, and each run's unused tool output (failed runs included)."""

LEAK_RUNS = Derived(
    "leak_runs",
    f"""WITH {_CALLS}
    SELECT f.tenant, f.trace_id, any_value(f.agent) AS agent, any_value(f.failed) AS failed,
           sum(f.cost) AS spend, sum(f.cost) FILTER (WHERE f.retried) AS retries_usd,
           count(*) FILTER (WHERE f.retried) AS retried_calls, bool_or(f.looping) AS looping,
           sum(f.cost) FILTER (WHERE f.retried OR f.looping) AS retried_or_looping_usd,
           any_value(u.calls) AS unused_calls, any_value(u.usd) AS unused_usd,
           list({{'input_tokens': f.input_tokens, 'cost': f.cost, 'plain': NOT f.retried AND NOT f.looping}})
               FILTER (WHERE f.operation IN ({sql_list(LLM_OPERATIONS)}) AND f.input_tokens > 0)
               AS model_calls
    FROM flagged f LEFT JOIN unused_per_run u USING (tenant, trace_id)
    GROUP BY f.tenant, f.trace_id""",
)
"""Per run with model or tool calls: its spend, retries, whether it loops, its unused tool
output, and its model calls with input tokens (the agent's median input, the oversized calls):
their input, cost, and whether each is neither retried nor looping."""
_USD = 10
"""Decimal places of the dollars (sums of the same calls in another order agree to them)."""

AGGREGATE_SQL = f"""
WITH leak_agents AS (
    SELECT tenant, agent, min(agent_name) AS agent_name, count(*) AS runs FROM runs GROUP BY ALL
),
run_rows AS (__RUN_ROWS__),
call_rows AS (
    SELECT tenant, agent, failed, unnest(model_calls, recursive := true) FROM run_rows
),
usual AS (
    SELECT tenant, agent, median(input_tokens) AS median_input FROM call_rows GROUP BY tenant, agent
),
oversized AS (
    SELECT c.tenant, c.agent, c.failed, c.plain,
        CASE WHEN c.input_tokens >= {OVERSIZED_MIN_TOKENS}
                  AND c.input_tokens > {OVERSIZED_FACTOR} * u.median_input
             THEN c.cost * (c.input_tokens - u.median_input) / c.input_tokens END AS usd
    FROM call_rows c JOIN usual u USING (tenant, agent)
),
oversized_per_agent AS (
    SELECT tenant, agent, sum(usd) AS usd, count(usd) AS calls,
           sum(usd) FILTER (WHERE plain AND NOT failed) AS wasted
    FROM oversized GROUP BY tenant, agent
),
per_agent AS (
    SELECT tenant, agent, sum(spend) AS spend, sum(spend) FILTER (WHERE failed) AS failed_usd,
           sum(retries_usd) AS retries_usd, sum(retried_calls) AS retried_calls,
           sum(spend) FILTER (WHERE looping) AS loops_usd,
           -- a failed or looping run wastes all it spent; another its retries (and oversized calls)
           sum(CASE WHEN failed THEN spend ELSE coalesce(retried_or_looping_usd, 0) END) AS wasted,
           sum(unused_calls) FILTER (WHERE NOT failed) AS unused_calls,
           sum(unused_usd) FILTER (WHERE NOT failed) AS unused_usd
    FROM run_rows GROUP BY tenant, agent
)
SELECT g.tenant, g.agent, g.agent_name, g.runs, round(coalesce(p.spend, 0), {_USD}),
       round(coalesce(p.failed_usd, 0), {_USD}), round(coalesce(p.retries_usd, 0), {_USD}),
       coalesce(p.retried_calls, 0), round(coalesce(p.loops_usd, 0), {_USD}),
       round(coalesce(o.usd, 0), {_USD}), coalesce(o.calls, 0), coalesce(p.unused_calls, 0),
       round(coalesce(p.unused_usd, 0), {_USD}),
       round(coalesce(p.wasted, 0) + coalesce(o.wasted, 0) + coalesce(p.unused_usd, 0), {_USD}) AS wasted
FROM leak_agents g LEFT JOIN per_agent p USING (tenant, agent)
     LEFT JOIN oversized_per_agent o USING (tenant, agent)
ORDER BY wasted DESC, g.tenant, g.agent
"""


def leaks(runs: RunSet) -> list[Leak]:
    """Each agent's leaks among ``runs`` (``storage.runs.runs_in``, loaded with ``span_id``,
    ``outcome`` and ``agent_name``: its window, tenant and agent), most wasted first. The calls
    of a set from a run cache (``storage.runcache``) that keeps ``LEAK_RUNS`` come from there
    for the closed days."""
    rows = runs.query(AGGREGATE_SQL.replace("__RUN_ROWS__", derived_rows(runs, LEAK_RUNS)))
    return [Leak(*row) for row in rows]


def leak_dict(leak: Leak) -> dict[str, Any]:
    return {**leak.__dict__, "wasted_share": leak.wasted_share}
