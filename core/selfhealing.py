"""The names an agent that heals itself writes on its spans (no imports: agents load this).

The health API's advice has an id; an agent that follows it puts the id on its spans, and
records a fallback as an event, which the fallback report (``report.fallbacks``) reads.
"""

ADVICE_ID_ATTRIBUTE = "agentwatch.advice.id"
"""The span (or fallback event) attribute naming the advice the agent followed."""
FALLBACK_EVENT = "agent.fallback.triggered"
FALLBACK_REASON = "agent.fallback.reason"
FALLBACK_FROM = "agent.fallback.from"
FALLBACK_TO = "agent.fallback.to"
