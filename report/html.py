"""The health report as one self-contained HTML file: inline CSS and inline SVG charts drawn by
matplotlib, no script and no network access, so it can be mailed or attached to a ticket."""

from __future__ import annotations

import html
from io import StringIO
from typing import Any

from core.safetext import printable
from report.formats import (
    SUMMARY_COLUMNS,
    _when,
    pct,
    section_title,
    signal_agents,
    summary_cells,
    synthetic_note,
)
from report.health import AgentHealth, HealthReport
from report.signals import Signal

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #1d2433; }
h1 { font-size: 1.6rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #d8dde6; }
table { border-collapse: collapse; margin: .6rem 0; }
td, th { padding: .25rem .6rem; border: 1px solid #d8dde6; }
th { background: #f3f5f9; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.loud { background: #fde8e8; border: 2px solid #c81e1e; color: #8a1010; padding: .6rem 1rem; }
.loud { font-weight: 700; }
.quiet { color: #4a5568; }
.charts { display: flex; gap: 1rem; flex-wrap: wrap; }
"""


def _charts(agent: AgentHealth) -> str:
    """Two SVG charts: failure rate per bucket, and latency p50/p90/p99 per bucket."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    starts: list[Any] = [b.start for b in agent.buckets]  # matplotlib plots datetimes as dates
    svgs = []
    fig, ax = plt.subplots(figsize=(5.2, 2.4), dpi=96)
    width = (starts[1] - starts[0]) * 0.9 if len(starts) > 1 else 0.02
    ax.bar(
        starts,
        [100 * (b.failure_rate or 0) for b in agent.buckets],
        width=width,
        color="#c81e1e",
        align="edge",
    )
    ax.set_title("failure rate (%)", fontsize=9)
    ax.set_ylim(0, 100)
    svgs.append(_svg(fig, plt))
    fig, ax = plt.subplots(figsize=(5.2, 2.4), dpi=96)
    for label, values, color in (
        ("p50", [b.p50_ms for b in agent.buckets], "#2b6cb0"),
        ("p90", [b.p90_ms for b in agent.buckets], "#d69e2e"),
        ("p99", [b.p99_ms for b in agent.buckets], "#c81e1e"),
    ):
        ax.plot(
            starts, [float("nan") if v is None else v for v in values], marker=".", label=label, color=color
        )
    if len(starts) > 1:  # the whole window, empty buckets included, as in the rate chart
        ax.set_xlim(starts[0], starts[-1] + (starts[1] - starts[0]))
    ax.set_title("run latency (ms)", fontsize=9)
    ax.legend(fontsize=7)
    svgs.append(_svg(fig, plt))
    return f'<div class="charts">{"".join(svgs)}</div>'


def _svg(fig: object, plt: object) -> str:
    out = StringIO()
    fig.autofmt_xdate()  # type: ignore[attr-defined]
    fig.tight_layout()  # type: ignore[attr-defined]
    # No RDF metadata block (dates, creator): the page stays byte-stable for the same data.
    metadata = {"Date": None, "Creator": None, "Format": None, "Type": None}
    fig.savefig(out, format="svg", metadata=metadata)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[attr-defined]
    text = out.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and doctype: inline SVG


def _text(value: str) -> str:
    """Data as HTML text or a quoted attribute value: markup and control characters escaped."""
    return html.escape(printable(value))


def _table(header: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_text(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i in numeric else ''}>{_text(c)}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: HealthReport, signals: list[Signal]) -> str:
    scope = report.scope
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<title>agentwatch health report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>agentwatch health report</h1>",
        f'<p class="quiet">{html.escape(_when(scope.since))} to {html.escape(_when(scope.until))}; '
        f"{report.runs} runs; buckets of {report.bucket_seconds // 60} minutes.</p>",
    ]
    if note := synthetic_note(report):
        parts.append(f'<p class="quiet">{html.escape(note)}</p>')
    if not report.agents:
        parts.append("<p>No agent runs in this window.</p>")
    else:
        parts.append(
            _table(list(SUMMARY_COLUMNS), [summary_cells(a) for a in report.agents], {3, 4, 5, 6, 11})
        )
    for a in report.agents:
        parts.append(f"<h2 id='agent-{_text(a.agent)}'>{_text(section_title(a))}</h2>")
        css = "loud" if a.cross_user.loud else "quiet"
        flag = str(a.cross_user.flag).lower()
        parts.append(f'<p class="{css}" data-cross-user="{flag}">{_text(a.cross_user.message)}</p>')
        parts.append(_charts(a))
        if a.failure_types:
            parts.append(
                _table(
                    ["failure type", "count", "share"],
                    [[t.failure_type, str(t.count), pct(t.share)] for t in a.failure_types],
                    {1, 2},
                )
            )
        if a.top_affected_users:
            parts.append(
                _table(
                    ["user", "failed runs", "runs"],
                    [[u.user_id, str(u.failures), str(u.runs)] for u in a.top_affected_users],
                    {1, 2},
                )
            )
    if signals:
        parts.append("<h2>Failure signals</h2>")
        parts.append(
            _table(
                ["id", "type", "template", "count", "first seen", "last seen", "agents", "users", "examples"],
                [
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
                    for s in signals
                ],
                {3, 7},
            )
        )
    parts.append("</body></html>")
    return "\n".join(parts)
