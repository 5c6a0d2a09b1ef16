"""What the demo's users say about its runs: thumbs, a rating now and then, and comments.

Users rate a run the way people do: more often when it went wrong, mostly thumbs down then, with
a word on what went wrong; now and then thumbs up (or four or five stars) on a good answer; and
once in a while thumbs down on a run every span calls a success (the answer was wrong). Like the
run plan, it is pure data from ``seed``: the same runs get the same feedback.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from agentwatch.demo_scenarios.catalog import DEGRADING
from agentwatch.demo_scenarios.plan import RunPlan

# Chance that a run's user leaves feedback: on a failed run, a degraded one, a successful one.
RATE_FAILED = 0.45
RATE_DEGRADED = 0.45
RATE_SUCCEEDED = 0.10

# What users write, by what went wrong (``None``: the run succeeded); per agent where it differs.
_COMMENTS: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("expense-bot", "auth_failed"): (
        "it never filed my expense",
        "says it is not authorized to reach Concur - works for Alice though?",
        "failed again, I'll file it by hand",
    ),
    ("*", "auth_failed"): ("says it is not allowed to do that for me", "not authorized, again"),
    ("*", "timeout"): ("took forever and then gave up", "timed out, had to ask twice"),
    ("*", "rate_limit"): ("errored out, something about too many requests", "failed, try again later?"),
    ("*", "context_overflow"): (
        "fails as soon as I paste the whole thread",
        "my question was too long for it?",
    ),
    ("*", "tool_error"): ("the ticket it talks about does not exist", "answered without looking anything up"),
    ("*", "empty_response"): ("got an empty answer", "it said nothing at all"),
    ("*", "blocked_response"): ("refused a perfectly normal question", "why can't it answer this?"),
    ("*", None): ("thanks, exactly what I needed", "quick and correct", "saved me a trip to the wiki"),
}
_WRONG: tuple[str, ...] = ("the numbers are wrong", "that is not what I asked")
"""Comments on a run every span calls a success that its user rated down."""


@dataclass(frozen=True)
class FeedbackPlan:
    """One piece of a user's feedback on the run ``index`` of the plan: ``value`` is thumbs
    (``"up"``/``"down"``) or a rating (1-5), given ``delay_s`` seconds after the run ended."""

    index: int
    value: str | int
    comment: str | None
    delay_s: float

    @property
    def negative(self) -> bool:
        """As agentwatch reads it: thumbs down, or a rating of 1 or 2."""
        return self.value == "down" or (isinstance(self.value, int) and self.value <= 2)


def plan_feedback(plans: Sequence[RunPlan], seed: int) -> list[FeedbackPlan]:
    """The feedback the users of ``plans`` leave, in run order, from ``seed`` alone."""
    rng = random.Random(f"feedback:{seed}")
    found = []
    for plan in plans:
        failure = plan.failure
        succeeded = failure is None
        chance = RATE_SUCCEEDED if succeeded else RATE_DEGRADED if failure in DEGRADING else RATE_FAILED
        # Draw every number whether or not the run is rated, so one run's feedback never shifts another's.
        rated, kind, stars, said, pick, delay = (rng.random() for _ in range(6))
        if rated >= chance:
            continue
        value: str | int
        if succeeded and kind < 0.15:  # every span says success; the user disagrees
            value, comments = "down", _WRONG
        elif succeeded:
            value = "up" if kind < 0.75 else 4 + round(stars)
            comments = _comments(plan.agent.name, None)
        else:
            value = "down" if kind < 0.75 else 1 + round(stars)
            comments = _comments(plan.agent.name, failure)
        comment = comments[int(pick * len(comments))] if said < (0.35 if value == "up" else 0.75) else None
        found.append(FeedbackPlan(plan.index, value, comment, round(20 + delay * 580, 3)))
    return found


def _comments(agent: str, failure: str | None) -> tuple[str, ...]:
    return _COMMENTS.get((agent, failure)) or _COMMENTS[("*", failure)]
