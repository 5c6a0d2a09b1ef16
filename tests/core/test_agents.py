"""``core.agents.AgentRegistry``: an ``agents:`` entry names an agent by its id or its name."""

from __future__ import annotations

from core.agents import ADVICE_DEFAULTS, Advice, AgentConfig, AgentRegistry, Thresholds


def test_an_entry_matches_the_agent_by_id_or_by_name() -> None:
    registry = AgentRegistry((
        AgentConfig("expense-bot", owner="alice@acme.com", thresholds=Thresholds(failure_rate=0.3)),
        AgentConfig("agt_faq", name="faq-bot", owner="frank@acme.com"),
    ))  # fmt: skip
    # The entry's id is the agent's name, as the spans report it beside the id.
    by_name = registry.lookup("acme", "agt_7f3a9c21", name_from_spans="expense-bot")
    assert (by_name.owner, by_name.owner_source, by_name.thresholds.failure_rate) == (
        "alice@acme.com",
        "config",
        0.3,
    )
    assert by_name.name == "expense-bot"
    # The entry's name is the label of runs that carry no id.
    faq = registry.lookup("acme", "faq-bot")
    assert (faq.owner, faq.name) == ("frank@acme.com", "faq-bot")
    assert registry.lookup("acme", "agt_other", name_from_spans="other-bot").owner is None


def test_an_entry_for_the_id_beats_one_for_the_name() -> None:
    registry = AgentRegistry((
        AgentConfig("expense-bot", owner="by-name@acme.com"),
        AgentConfig("agt_7f3a9c21", owner="by-id@acme.com"),
    ))  # fmt: skip
    assert registry.lookup("acme", "agt_7f3a9c21", name_from_spans="expense-bot").owner == "by-id@acme.com"


def test_every_threshold_of_an_entry_is_looked_up() -> None:
    """The feedback thresholds were left out of ``lookup`` (alert rules always used the rule's)."""
    registry = AgentRegistry((
        AgentConfig("bot", thresholds=Thresholds(negative_feedback_rate=0.1, requery_rate=0.3)),
    ))  # fmt: skip
    assert registry.threshold("acme", "bot", "negative_feedback_rate", 0.5) == 0.1
    assert registry.threshold("acme", "bot", "requery_rate", 0.5) == 0.3
    assert registry.threshold("acme", "other", "requery_rate", 0.5) == 0.5


def test_advice_rules_merge_key_by_key_over_the_defaults() -> None:
    registry = AgentRegistry((
        AgentConfig("bot", advice=Advice(fallback_model="small", avoid_tool_after_failures=2)),
        AgentConfig("bot", tenant="acme", advice=Advice(avoid_tool_after_failures=5)),
    ))  # fmt: skip
    acme = registry.advice("acme", "bot")
    assert (acme.avoid_tool_after_failures, acme.fallback_model, acme.latency_factor) == (5, "small", 2.0)
    other = registry.advice("globex", "bot")
    assert (other.avoid_tool_after_failures, other.fallback_model) == (2, "small")
    assert registry.advice("acme", "nobody") == ADVICE_DEFAULTS
