"""The health report as JSON, terminal text and Markdown (HTML: ``report.html``).

The JSON document is the stable form; its schema is ``agentwatch.report/v1`` (README, "Health
report"). Fields are only ever added within v1. Times are ISO 8601 UTC, durations milliseconds,
rates and shares fractions from 0 to 1.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from io import StringIO
from typing import Any

from rich.console import Console
from rich.table import Table

from core.safetext import cell, printable
from feedback.implicit import ImplicitSummary
from report.fallbacks import FallbackSummary
from report.health import AgentHealth, FeedbackSummary, HealthReport
from report.signals import Signal

SCHEMA = "agentwatch.report/v1"
_SPARK = " ▁▂▃▄▅▆▇█"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def feedback_line(f: FeedbackSummary) -> str:
    """``12 pieces on 10 runs, 4 negative (33.3%), mean rating 3.2; negative on failed runs 80.0%,
    on successful runs 10.0%; negative by failure type: timeout 80.0% (4 of 5), none 10.0% (1 of
    10); judge groundedness: 3.10 on runs rated down (2), 8.40 on the others (5)``."""
    parts = [f"{f.pieces} pieces on {f.runs_with_feedback} runs"]
    parts[0] += f", {f.negative} negative ({pct(f.negative_rate)})"
    if f.mean_rating is not None:
        parts[0] += f", mean rating {f.mean_rating:.1f}"
    if f.negative_rate_failed is not None or f.negative_rate_succeeded is not None:
        failed, succeeded = pct(f.negative_rate_failed), pct(f.negative_rate_succeeded)
        parts.append(f"negative on failed runs {failed}, on successful runs {succeeded}")
    if f.by_failure_type:
        shares = ", ".join(
            f"{t.failure_type} {pct(t.negative_rate)} ({t.negative} of {t.pieces})" for t in f.by_failure_type
        )
        parts.append(f"negative by failure type: {shares}")
    for j in f.judge_scores:
        parts.append(
            f"judge {j.dimension}: {_score(j.mean_on_negative)} on runs rated down ({j.runs_negative}), "
            f"{_score(j.mean_on_other)} on the others ({j.runs_other})"
        )
    return "; ".join(parts)


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def implicit_line(i: ImplicitSummary) -> str:
    """``3 of 40 runs requeried (7.5%); 2 of 9 sessions abandoned (22.2%); 1 cancelled; 2 users
    on failure streaks (longest 4)``."""
    parts = [f"{i.requeried_runs} of {i.runs} runs requeried ({pct(i.requery_rate)})"]
    if i.sessions:
        parts.append(f"{i.abandoned_sessions} of {i.sessions} sessions abandoned ({pct(i.abandonment_rate)})")
    if i.cancelled_runs:
        parts.append(f"{i.cancelled_runs} cancelled")
    streaks = f"{i.users_on_failure_streaks} users on failure streaks"
    parts.append(f"{streaks} (longest {i.longest_failure_streak})")
    return "; ".join(parts)


def fallback_line(f: FallbackSummary) -> str:
    """``2 of 5 runs fell back (40.0%: rate_limit 1, search_down 1); 50.0% of them succeeded,
    33.3% of the others``."""
    reasons = ", ".join(f"{reason} {n}" for reason, n in f.reasons.items())
    helped = f"{pct(f.success_rate_with)} of them succeeded, {pct(f.success_rate_without)} of the others"
    advised = f"; {f.followed_advice} following agentwatch's advice" if f.followed_advice else ""
    fell = f"{f.fell_back} of {f.runs} runs fell back ({pct(f.activation_rate)}: {reasons})"
    return f"{fell}; {helped}{advised}"


def agent_dict(agent: AgentHealth) -> dict[str, Any]:
    a = dataclasses.asdict(agent)
    out: dict[str, Any] = _plain(
        {
            "tenant": a["tenant"],
            "agent": a["agent"],
            "agent_name": a["agent_name"],
            "owner": a["owner"],
            "owner_source": a["owner_source"],
            "runs": a["runs"],
            "failures": a["failures"],
            "degraded": a["degraded"],
            "failure_rate": a["failure_rate"],
            "latency_ms": {"p50": a["p50_ms"], "p90": a["p90_ms"], "p95": a["p95_ms"], "p99": a["p99_ms"]},
            "last_failure_at": a["last_failure_at"],
            "last_run_at": a["last_run_at"],
            "failure_types": a["failure_types"],
            "affected_users": {"count": a["affected_users"], "top": a["top_affected_users"]},
            "cross_user": a["cross_user"],
            "feedback": a["feedback"],
            "implicit_feedback": a["implicit"],
            "fallbacks": a["fallbacks"],
            "buckets": a["buckets"],
        }
    )
    return out


def to_json_dict(report: HealthReport, signals: list[Signal]) -> dict[str, Any]:
    scope = report.scope
    return {
        "schema": SCHEMA,
        "window": {
            "since": _iso(scope.since),
            "until": _iso(scope.until),
            "bucket_seconds": report.bucket_seconds,
        },
        "filters": {"agent": scope.agent, "tenant": scope.tenant, "synthetic": scope.synthetic},
        "runs": report.runs,
        "synthetic_runs_left_out": report.synthetic_left_out,
        "agents": [agent_dict(a) for a in report.agents],
        "signals": [_plain(dataclasses.asdict(s)) for s in signals],
    }


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def sparkline(rates: list[float | None]) -> str:
    """One character per bucket: blank for no runs, ▁ to █ for 0 to 100% failed."""
    return "".join("·" if r is None else _SPARK[1 + round(r * (len(_SPARK) - 2))] for r in rates)


def _when(value: datetime | None) -> str:
    return "never" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


# The per-agent summary row every format shows (text names the rate column "rate": narrower); the
# agent reads "expense-bot (agt_7f3a9c21)" when it has a name besides its id.
SUMMARY_COLUMNS = ("tenant", "agent", "owner", "runs", "failed", "failure rate", "degraded", "p50", "p90",
                   "p99", "last failure", "affected users", "cross-user")  # fmt: skip


def summary_cells(a: AgentHealth, loud: str = "LOUD") -> list[str]:
    cross = loud if a.cross_user.loud else ("yes" if a.cross_user.flag else "no")
    return [a.tenant, a.label, a.owner or "?", str(a.runs), str(a.failures), pct(a.failure_rate),
            str(a.degraded), ms(a.p50_ms), ms(a.p90_ms), ms(a.p99_ms), _when(a.last_failure_at),
            str(a.affected_users), cross]  # fmt: skip


# --- terminal text ---------------------------------------------------------------------------


def section_title(a: AgentHealth) -> str:
    """The heading of an agent's section: ``expense-bot (agt_7f3a9c21), tenant acme``."""
    return f"{a.label}, tenant {a.tenant}"


def signal_agents(report: HealthReport, s: Signal) -> str:
    """The agents of a signal, each with its name beside its id when the report knows one."""
    labels = {a.agent: a.label for a in report.agents}
    return ", ".join(labels.get(agent, agent) for agent in s.agents)


def synthetic_note(report: HealthReport) -> str | None:
    """What the report says about eval traffic (synthetic runs), if anything."""
    if report.scope.synthetic is None:
        return "Synthetic (eval) runs are included."
    if report.scope.synthetic:
        return "Synthetic (eval) runs only."
    if report.synthetic_left_out:
        runs = "run" if report.synthetic_left_out == 1 else "runs"
        return (
            f"{report.synthetic_left_out} synthetic (eval) {runs} left out: production only "
            "(--include-synthetic to include them)."
        )
    return None


def render_text(report: HealthReport, signals: list[Signal], width: int = 160) -> str:
    out = StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    scope = report.scope
    console.print(
        f"agentwatch health report  {_when(scope.since)} → {_when(scope.until)}"
        f"  ({report.runs} runs, {len(report.agents)} agents, buckets of {report.bucket_seconds // 60} min)"
    )
    if note := synthetic_note(report):
        console.print(note)
    if not report.agents:
        console.print("No agent runs in this window.")
    summary = Table(title="Agents", title_justify="left")
    for column in SUMMARY_COLUMNS:
        name = "rate" if column == "failure rate" else column
        numeric = name in ("runs", "failed", "rate", "degraded")
        summary.add_column(name, justify="right" if numeric else "left")
    for a in report.agents:
        summary.add_row(*map(cell, summary_cells(a)))
    if report.agents:
        console.print(summary)
    # Plain lines go straight to the buffer: rich's layout per line costs more than the queries.
    for a in report.agents:
        lines = [section_title(a)]
        loud = a.cross_user.loud
        lines.append(f"!! {a.cross_user.message}" if loud else f"cross-user: {a.cross_user.message}")
        lines.append(f"failure rate over time: [{sparkline([b.failure_rate for b in a.buckets])}]")
        p99 = [b.p99_ms for b in a.buckets if b.p99_ms is not None]
        if p99:
            lines.append(f"p99 latency per bucket: min {ms(min(p99))}, max {ms(max(p99))}")
        if a.failure_types:
            types = ", ".join(f"{t.failure_type} {t.count} ({pct(t.share)})" for t in a.failure_types)
            lines.append(f"failure types: {types}")
        if a.top_affected_users:
            users = ", ".join(f"{u.user_id} ({u.failures}/{u.runs} failed)" for u in a.top_affected_users)
            lines.append(f"most affected users: {users}")
        if a.feedback is not None:
            lines.append(f"feedback: {feedback_line(a.feedback)}")
        if a.implicit is not None:
            lines.append(f"implicit feedback: {implicit_line(a.implicit)}")
        if a.fallbacks is not None and a.fallbacks.fell_back:
            lines.append(f"fallbacks: {fallback_line(a.fallbacks)}")
        out.write("".join(f"\n{printable(line)}" for line in lines) + "\n")
    if signals:
        table = Table(title="\nFailure signals", title_justify="left")
        for column in (
            "id",
            "type",
            "template",
            "count",
            "first seen",
            "last seen",
            "agents",
            "users",
            "example trace",
        ):
            table.add_column(column)
        for s in signals:
            cells = [
                s.id,
                s.failure_type,
                s.template,
                str(s.count),
                _when(s.first_seen),
                _when(s.last_seen),
                signal_agents(report, s),
                str(s.affected_users),
                s.example_trace_ids[0] if s.example_trace_ids else "",
            ]
            table.add_row(*map(cell, cells))
        console.print(table)
    return out.getvalue()


# --- Markdown --------------------------------------------------------------------------------


# Markdown syntax in data: HTML and autolinks (< > &), links ([ ]), code spans (`), table cells (|),
# backslash escapes.
_MD_ESCAPES = str.maketrans({"\\": "\\\\", "&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "[": "\\[",
                             "]": "\\]", "`": "\\`"})  # fmt: skip


def md_text(value: str) -> str:
    """Data as literal Markdown text, on one line (control characters and newlines escaped)."""
    return printable(value).translate(_MD_ESCAPES)


def md_row(cells: list[str]) -> str:
    return "| " + " | ".join(md_text(c) for c in cells) + " |"


def render_markdown(report: HealthReport, signals: list[Signal]) -> str:
    scope = report.scope
    lines = [
        "# agentwatch health report",
        "",
        f"Window: {_when(scope.since)} to {_when(scope.until)}; {report.runs} runs; "
        f"buckets of {report.bucket_seconds // 60} minutes.",
        "",
    ]
    if note := synthetic_note(report):
        lines += [md_text(note), ""]
    if report.agents:
        lines += [md_row(list(SUMMARY_COLUMNS)), md_row(["---"] * len(SUMMARY_COLUMNS))]
        lines += [md_row(summary_cells(a, loud="**LOUD**")) for a in report.agents]
    else:
        lines.append("No agent runs in this window.")
    for a in report.agents:
        lines += ["", f"## {md_text(section_title(a))}", ""]
        message = md_text(a.cross_user.message)
        lines.append(f"> **{message}**" if a.cross_user.loud else f"Cross-user: {message}")
        lines += ["", f"Failure rate over time: `{sparkline([b.failure_rate for b in a.buckets])}`", ""]
        if a.failure_types:
            lines += [md_row(["failure type", "count", "share"]), md_row(["---"] * 3)]
            lines += [md_row([t.failure_type, str(t.count), pct(t.share)]) for t in a.failure_types]
            lines.append("")
        if a.top_affected_users:
            lines += [md_row(["user", "failed runs", "runs"]), md_row(["---"] * 3)]
            lines += [md_row([u.user_id, str(u.failures), str(u.runs)]) for u in a.top_affected_users]
        if a.feedback is not None:
            lines += ["", f"Feedback: {md_text(feedback_line(a.feedback))}"]
        if a.implicit is not None:
            lines += ["", f"Implicit feedback: {md_text(implicit_line(a.implicit))}"]
        if a.fallbacks is not None and a.fallbacks.fell_back:
            lines += ["", f"Fallbacks: {md_text(fallback_line(a.fallbacks))}"]
    if signals:
        lines += ["", "## Failure signals", ""]
        header = ["id", "type", "template", "count", "first seen", "last seen", "agents", "users", "examples"]
        lines += [md_row(header), md_row(["---"] * len(header))]
        for s in signals:
            lines.append(
                md_row(
                    [
                        s.id,
                        s.failure_type,
                        s.template,
                        str(s.count),
                        _when(s.first_seen),
                        _when(s.last_seen),
                        signal_agents(report, s),
                        str(s.affected_users),
                        ", ".join(s.example_trace_ids),
                    ]
                )
            )
    return "\n".join(lines) + "\n"
