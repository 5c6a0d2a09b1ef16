"""The alert state machine on its own: which transitions each pass yields, at exact times."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from alerting.rules import Finding
from alerting.state import FIRING, REPEAT, RESOLVED, AlertState, Transition

T0 = datetime(2025, 11, 22, 12, 0, tzinfo=UTC)
COOLDOWN = {"failing": 1800.0, "budget": 1800.0, "slow": 600.0}


def cooldown(rule: str) -> float:
    return COOLDOWN[rule]


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def finding(
    rule: str = "failing", agent: str = "expense-bot", value: float = 0.5, key_extra: str = "",
    repeats: bool = True, resolves: bool = True,
) -> Finding:  # fmt: skip
    return Finding(rule, "failure_rate", "default", agent, value, 0.2, f"{agent} at {value}",
                   key_extra=key_extra, repeats=repeats, resolves=resolves)  # fmt: skip


def test_fire_hold_repeat_after_the_cooldown_and_resolve() -> None:
    state = AlertState()
    first, worse, better = finding(value=0.5), finding(value=0.6), finding(value=0.4)
    assert state.step([first], T0, cooldown) == [Transition(FIRING, first, T0)]
    assert state.step([worse], minutes(29), cooldown) == []  # within the cooldown: held
    assert state.active[first.key].finding == worse  # ... but the newest finding is kept
    assert state.active[first.key].last_sent == T0
    # Exactly the cooldown since the last message: repeated, with the time it first fired.
    assert state.step([worse], minutes(30), cooldown) == [Transition(REPEAT, worse, T0)]
    assert state.step([better], minutes(59), cooldown) == []  # the cooldown counts from the repeat
    assert state.step([better], minutes(60), cooldown) == [Transition(REPEAT, better, T0)]
    # No longer found: resolved with the finding as it was last reported.
    assert state.step([], minutes(61), cooldown) == [Transition(RESOLVED, better, T0, silent=False)]
    assert state.active == {}
    assert state.step([], minutes(62), cooldown) == []
    # Found again: a new alert, fired now.
    assert state.step([first], minutes(63), cooldown) == [Transition(FIRING, first, minutes(63))]


def test_each_alert_has_its_own_key_and_its_rules_cooldown() -> None:
    state = AlertState()
    expense, faq = finding(agent="expense-bot"), finding(agent="faq-bot")
    slow = finding(rule="slow")
    assert state.step([expense, slow], T0, cooldown) == [
        Transition(FIRING, expense, T0),
        Transition(FIRING, slow, T0),
    ]
    assert state.step([expense, slow, faq], minutes(10), cooldown) == [
        Transition(REPEAT, slow, T0),  # slow's cooldown is 10 minutes
        Transition(FIRING, faq, minutes(10)),
    ]
    assert [t.state for t in state.step([expense, slow, faq], minutes(15), cooldown)] == []
    assert state.step([slow], minutes(20), cooldown) == [
        Transition(REPEAT, slow, T0),
        Transition(RESOLVED, expense, T0),
        Transition(RESOLVED, faq, minutes(10)),
    ]


def test_a_budget_or_eval_event_fires_once_and_resolves_silently() -> None:
    state = AlertState()
    level = finding(rule="budget", key_extra="2025-11@0.8", repeats=False, resolves=False)
    assert state.step([level], T0, cooldown) == [Transition(FIRING, level, T0)]
    assert state.step([level], minutes(30), cooldown) == []  # never repeated
    assert state.step([level], minutes(24 * 60), cooldown) == []
    assert state.step([], minutes(24 * 60 + 1), cooldown) == [Transition(RESOLVED, level, T0, silent=True)]
    assert state.active == {}


def test_alerts_of_a_rule_not_evaluated_this_pass_are_left_as_they_are() -> None:
    state = AlertState()
    failing, slow = finding(), finding(rule="slow")
    state.step([failing, slow], T0, cooldown)
    # "slow" failed to evaluate: its alert is neither resolved nor repeated; "failing" resolves.
    assert state.step([], minutes(45), cooldown, evaluated={"failing"}) == [Transition(RESOLVED, failing, T0)]
    assert list(state.active) == [slow.key]
    assert state.active[slow.key].last_sent == T0
    assert state.step([], minutes(46), cooldown, evaluated={"failing", "slow"}) == [
        Transition(RESOLVED, slow, T0)
    ]


def test_restore_keeps_firing_and_repeated_alerts_from_their_last_event() -> None:
    firing, repeated, resolved = finding(agent="a"), finding(agent="b"), finding(agent="c")
    state = AlertState()
    state.restore([
        (firing.key, FIRING, T0, T0, firing),
        (repeated.key, REPEAT, T0, minutes(30), repeated),
        (resolved.key, RESOLVED, T0, minutes(40), resolved),
    ])  # fmt: skip
    assert sorted(state.active) == [firing.key, repeated.key]
    assert state.active[repeated.key].fired_at == T0 and state.active[repeated.key].last_sent == minutes(30)
    # The restored last message times drive the cooldowns: "a" repeats at 30 minutes, "b" at 60;
    # "c" was resolved, so it fires anew.
    assert state.step([firing, repeated, resolved], minutes(30), cooldown) == [
        Transition(REPEAT, firing, T0),
        Transition(FIRING, resolved, minutes(30)),
    ]
    assert state.step([firing, repeated, resolved], minutes(60), cooldown) == [
        Transition(REPEAT, firing, T0),
        Transition(REPEAT, repeated, T0),
        Transition(REPEAT, resolved, minutes(30)),
    ]


def test_the_key_is_rule_tenant_agent_and_extra() -> None:
    assert finding().key == "failing|default|expense-bot|"
    assert (
        replace(finding(), tenant="acme", key_extra="2025-11@1").key == "failing|acme|expense-bot|2025-11@1"
    )
