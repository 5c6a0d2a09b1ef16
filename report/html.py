"""The health report as one self-contained HTML file: inline CSS and inline SVG charts drawn by
pygal, no script and no network access, so it can be mailed or attached to a ticket."""

from __future__ import annotations

import html
import re
from datetime import datetime
from typing import Any

from core.safetext import printable
from report.formats import (
    SUMMARY_COLUMNS,
    _when,
    fallback_line,
    feedback_line,
    implicit_line,
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
.charts svg { width: 520px; height: 250px; }
.charts svg .guides .line, .charts svg .axis .guides .line { stroke: #e2e8f0 !important; }
.charts svg .guides .line { stroke-dasharray: none !important; }
"""


def _charts(agent: AgentHealth, index: int) -> str:
    """Two SVG charts drawn by pygal: failure rate per bucket, and latency p50/p90/p99 per bucket.
    They hold numbers and fixed labels only (no span data), no script, and the same bytes for
    the same report (``index`` names their element ids; pygal's dated comments and its tooltip
    script are dropped)."""
    import pygal

    labels = [_bucket_label(b.start, agent) for b in agent.buckets]
    common: dict[str, Any] = {
        "width": 520, "height": 250, "js": [], "disable_xml_declaration": True,
        "x_label_rotation": 30, "show_minor_x_labels": False, "truncate_label": -1,
        "x_labels_major_every": max(1, len(labels) // 8), "legend_at_bottom": True,
        "legend_at_bottom_columns": 3, "y_labels_major_count": 6, "show_minor_y_labels": False,
    }  # fmt: skip
    rate = pygal.Bar(
        title="failure rate (%)", range=(0, 100), show_legend=False,
        style=_style("#c81e1e"), **common,
    )  # fmt: skip
    rate.x_labels = labels
    rate.add("failure rate", [None if b.failure_rate is None else round(100 * b.failure_rate, 1)
                              for b in agent.buckets])  # fmt: skip
    latency = pygal.Line(title="run latency (ms)", style=_style("#2b6cb0", "#d69e2e", "#c81e1e"), **common)
    latency.x_labels = labels
    for name, values in (
        ("p50", [b.p50_ms for b in agent.buckets]),
        ("p90", [b.p90_ms for b in agent.buckets]),
        ("p99", [b.p99_ms for b in agent.buckets]),
    ):
        latency.add(name, [None if v is None else round(v, 1) for v in values])
    svgs = []
    for name, chart in (("rate", rate), ("latency", latency)):
        chart.uuid = f"agent{index}-{name}"
        svgs.append(_COMMENT.sub("", chart.render(is_unicode=True)))
    return f'<div class="charts">{"".join(svgs)}</div>'


# pygal's dated comments, and the script it always adds (its tooltip config): the report has none.
_COMMENT = re.compile(r"<!--.*?-->|<script\b[^>]*?(?:/>|>.*?</script>)", re.S)


def _style(*colors: str) -> Any:
    from pygal.style import Style

    return Style(
        background="white", plot_background="white", foreground="#1d2433", foreground_strong="#1d2433",
        foreground_subtle="#d8dde6", colors=colors, font_family="system-ui, sans-serif",
        title_font_size=12, label_font_size=9, major_label_font_size=9, legend_font_size=10,
    )  # fmt: skip


def _bucket_label(start: datetime, agent: AgentHealth) -> str:
    """A bucket's start: the time of day when every bucket is on one day, else date and time."""
    days = {b.start.date() for b in agent.buckets}
    return start.strftime("%H:%M" if len(days) == 1 else "%m-%d %H:%M")


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
    for index, a in enumerate(report.agents):
        parts.append(f"<h2 id='agent-{_text(a.agent)}'>{_text(section_title(a))}</h2>")
        css = "loud" if a.cross_user.loud else "quiet"
        flag = str(a.cross_user.flag).lower()
        parts.append(f'<p class="{css}" data-cross-user="{flag}">{_text(a.cross_user.message)}</p>')
        if a.feedback is not None:
            parts.append(f'<p class="feedback">Feedback: {_text(feedback_line(a.feedback))}</p>')
        if a.implicit is not None:
            parts.append(f'<p class="feedback">Implicit feedback: {_text(implicit_line(a.implicit))}</p>')
        if a.fallbacks is not None and a.fallbacks.fell_back:
            parts.append(f'<p class="feedback">Fallbacks: {_text(fallback_line(a.fallbacks))}</p>')
        parts.append(_charts(a, index))
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
