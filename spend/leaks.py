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
from storage.runs import FAILED_SQL, RunSet, since_date, sql_list

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


LEAKS_SQL = f"""
WITH window_runs AS (
    SELECT tenant, trace_id, span_id AS run_span_id, {FAILED_SQL} AS failed, agent, agent_name FROM runs
),
agents AS (
    SELECT tenant, agent, min(agent_name) AS agent_name, count(*) AS runs FROM window_runs GROUP BY ALL
),
calls AS (
    SELECT s.tenant, s.trace_id, s.span_id, s.operation, coalesce(s.model, s.tool_name, s.name) AS callee,
           CASE WHEN s.input_text IS NOT NULL THEN hash(s.input_text) END AS input_hash,
           CASE WHEN s.operation IN ({sql_list(TOOL_OPERATIONS)}) AND s.output_text <> ''
                THEN s.output_text END AS tool_output,
           coalesce(s.input_tokens, 0) AS input_tokens, coalesce(s.cost_usd, 0) AS cost, r.agent, r.failed
    FROM spans s JOIN window_runs r ON r.tenant = s.tenant AND r.trace_id = s.trace_id
    WHERE s.date >= $since_date AND s.operation IN ({sql_list((*LLM_OPERATIONS, *TOOL_OPERATIONS))})
),
loops AS (
    SELECT DISTINCT tenant, trace_id FROM spans WHERE date >= $since_date AND failure_type = 'loop_detected'
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
usual AS (
    SELECT tenant, agent, median(input_tokens) AS median_input FROM calls
    WHERE operation IN ({sql_list(LLM_OPERATIONS)}) AND input_tokens > 0 GROUP BY tenant, agent
),
priced AS (
    SELECT c.*,
        CASE WHEN c.operation IN ({sql_list(LLM_OPERATIONS)}) AND c.input_tokens >= {OVERSIZED_MIN_TOKENS}
                  AND c.input_tokens > {OVERSIZED_FACTOR} * u.median_input
             THEN c.cost * (c.input_tokens - u.median_input) / c.input_tokens END AS oversized
    FROM flagged c LEFT JOIN usual u USING (tenant, agent)
),
-- The answers of runs with tool output only (the run span's output text).
answers AS (
    SELECT s.tenant, s.trace_id, {words_sql("s.output_text", WORD_LETTERS)} AS words
    FROM spans s JOIN window_runs r
        ON r.tenant = s.tenant AND r.trace_id = s.trace_id AND r.run_span_id = s.span_id
    WHERE s.date >= $since_date AND s.output_text IS NOT NULL
      AND (s.tenant, s.trace_id) IN (SELECT (tenant, trace_id) FROM calls WHERE tool_output IS NOT NULL)
),
run_price AS (
    SELECT tenant, trace_id, sum(cost) / nullif(sum(input_tokens), 0) AS per_input_token,
           sum(cost) AS input_cost
    FROM calls WHERE operation IN ({sql_list(LLM_OPERATIONS)}) GROUP BY tenant, trace_id
),
-- Unused tool output of runs not already wasted whole (failed, looping), at most the run's input cost.
unused_per_run AS (
    SELECT t.tenant, t.agent, t.trace_id, count(*) AS calls,
           least(coalesce(sum(length(t.tool_output) / {CHARS_PER_TOKEN} * p.per_input_token), 0),
                 any_value(p.input_cost)) AS usd
    FROM calls t JOIN answers a USING (tenant, trace_id) LEFT JOIN run_price p USING (tenant, trace_id)
    WHERE t.tool_output IS NOT NULL AND NOT t.failed
      AND (t.tenant, t.trace_id) NOT IN (SELECT (tenant, trace_id) FROM loops)
      AND len(list_intersect({words_sql("t.tool_output", WORD_LETTERS)}, a.words)) = 0
    GROUP BY ALL
),
unused AS (
    SELECT tenant, agent, sum(calls) AS calls, coalesce(sum(usd), 0) AS usd FROM unused_per_run GROUP BY ALL
),
per_agent AS (
    SELECT tenant, agent, sum(cost) AS spend,
           sum(cost) FILTER (WHERE failed) AS failed_usd,
           sum(cost) FILTER (WHERE retried) AS retries_usd, count(*) FILTER (WHERE retried) AS retried_calls,
           sum(cost) FILTER (WHERE looping) AS loops_usd,
           sum(oversized) AS oversized_usd, count(oversized) AS oversized_calls,
           sum(CASE WHEN failed OR retried OR looping THEN cost ELSE coalesce(oversized, 0) END) AS wasted
    FROM priced GROUP BY tenant, agent
)
SELECT g.tenant, g.agent, g.agent_name, g.runs, coalesce(p.spend, 0), coalesce(p.failed_usd, 0),
       coalesce(p.retries_usd, 0), coalesce(p.retried_calls, 0), coalesce(p.loops_usd, 0),
       coalesce(p.oversized_usd, 0), coalesce(p.oversized_calls, 0), coalesce(u.calls, 0), coalesce(u.usd, 0),
       coalesce(p.wasted, 0) + coalesce(u.usd, 0) AS wasted
FROM agents g LEFT JOIN per_agent p USING (tenant, agent) LEFT JOIN unused u USING (tenant, agent)
ORDER BY wasted DESC, g.tenant, g.agent
"""


def leaks(runs: RunSet) -> list[Leak]:
    """Each agent's leaks among ``runs`` (``storage.runs.runs_in``, loaded with ``span_id``,
    ``outcome`` and ``agent_name``: its window, tenant and agent), most wasted first."""
    rows = runs.query(LEAKS_SQL, {"since_date": since_date(runs.scope.since)})
    return [Leak(*row) for row in rows]


def leak_dict(leak: Leak) -> dict[str, Any]:
    return {**leak.__dict__, "wasted_share": leak.wasted_share}
