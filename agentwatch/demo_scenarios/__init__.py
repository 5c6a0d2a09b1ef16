"""What the ``agentwatch demo`` agents do: the catalog, the run plan and each run's span tree.

Everything here is pure data built from a seeded ``random.Random``: no OpenTelemetry SDK
objects, no clock. ``agentwatch.demo`` turns the ``SpanSpec`` trees into real spans.

Each agent speaks one telemetry convention, the way a real deployment mixes frameworks:

* ``expense-bot`` - Glean-shaped: ``agent_run`` root (``glean.agent.id``/``name``/``creator``,
  ``glean.run.input``/``output``/``status``), ``chat`` children with the *old* GenAI names
  (``gen_ai.system``, ``gen_ai.usage.prompt_tokens``, ``gen_ai.prompt``/``completion``) and an
  ``mcp`` child per connector call (``glean.connector``, ``mcp.method.name``, ``gen_ai.tool.name``).
* ``it-helpdesk``, ``hr-policy`` - current OpenTelemetry GenAI conventions: ``invoke_agent``,
  ``chat {model}``, ``execute_tool {tool}``, and for it-helpdesk an MCP ``tools/call {tool}``.
* ``sales-research`` - OpenInference: AGENT / RETRIEVER / LLM / TOOL spans.

A run's failure kind is decided up front; the spans then carry the evidence a classifier reads
(status, ``error.type``, exception events, JSON-RPC codes, finish reasons, empty output).

The package splits that into:

* ``catalog`` - the data: failure kinds, users, models and the four agents with their tasks.
* ``plan`` - ``plan_runs``: each run's agent, user, session, start time and failure kind.
* ``spans`` - ``SpanSpec`` and the other span-tree types, the ``Shape`` protocol and shared helpers.
* ``build`` - ``build_run``: the steps of one run and where its failure shows, dressed by a shape.
* ``glean``, ``genai``, ``openinference`` - one ``Shape`` per telemetry convention.
* ``feedback`` - ``plan_feedback``: what the runs' users say of some of them (thumbs, ratings,
  comments), which ``agentwatch.demo`` posts to the feedback API.
"""

from agentwatch.demo_scenarios.build import build_run
from agentwatch.demo_scenarios.catalog import AGENTS, DEGRADING, Agent
from agentwatch.demo_scenarios.plan import RunPlan, plan_runs
from agentwatch.demo_scenarios.spans import ErrorSpec, SpanSpec

__all__ = [
    "AGENTS",
    "DEGRADING",
    "Agent",
    "ErrorSpec",
    "RunPlan",
    "SpanSpec",
    "build_run",
    "plan_runs",
]
