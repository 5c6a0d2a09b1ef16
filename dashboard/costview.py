"""The cost page: spend by a dimension (``report.cost``, as ``agentwatch cost`` computes it), the
spend of its five largest keys over time, and where money leaks (``spend.leaks``)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from dashboard.reader import Reader
from dashboard.window import BadRequest, Window
from report.cost import (
    COST_BASE,
    DIMENSIONS,
    RUN_DIMENSIONS,
    SPAN_DIMENSIONS,
    cost_columns,
    cost_report,
    report_dict,
)
from report.health import bucket_seconds
from spend.leaks import LEAK_BASE, leak_dict, leaks
from storage.runs import since_date

TOP = 5


def cost_view(reader: Reader, window: Window, by: str) -> dict[str, Any]:
    if by not in DIMENSIONS:
        raise BadRequest(f"by: one of {', '.join(DIMENSIONS)}")
    size = bucket_seconds(window.length.total_seconds())
    with reader.connection() as con:
        runs = reader.runs(con, window, extra=cost_columns(by), base=COST_BASE)
        report = cost_report(runs, by)
        if by in RUN_DIMENSIONS:
            sql = f"""SELECT {RUN_DIMENSIONS[by]} AS key,
                             (epoch_us(start_time) - epoch_us($since::TIMESTAMPTZ)) // $size AS b,
                             sum(cost_usd) FROM runs GROUP BY ALL"""
        else:
            sql = f"""SELECT {SPAN_DIMENSIONS[by]} AS key,
                             (epoch_us(s.start_time) - epoch_us($since::TIMESTAMPTZ)) // $size AS b,
                             sum(s.cost_usd)
                      FROM spans s SEMI JOIN runs r ON s.trace_id = r.trace_id AND s.tenant = r.tenant
                      WHERE s.date >= $since_date AND s.model IS NOT NULL GROUP BY ALL"""
        rows = runs.query(
            sql,
            {"since": window.since, "size": size * 1_000_000,
             **({"since_date": since_date(window.since)} if by in SPAN_DIMENSIONS else {})},
        )  # fmt: skip
    count = math.ceil(window.length.total_seconds() / size)
    label = {row.id: row.key for row in report.rows[:TOP]}
    series: dict[str, list[float]] = {name: [0.0] * count for name in label.values()}
    for key, bucket, spend in rows:
        name = label.get(str(key))
        if name is not None and spend is not None and 0 <= int(bucket) < count:
            series[name][int(bucket)] += float(spend)
    doc = report_dict(report)
    doc.update(
        window=window.as_dict(),
        bucket_seconds=size,
        starts=[window.since + timedelta(seconds=i * size) for i in range(count)],
        series=series,
    )
    return doc


def leaks_view(reader: Reader, window: Window) -> dict[str, Any]:
    """Where money leaks per agent in the window (``spend.leaks``), most wasted first."""
    with reader.connection() as con:
        found = leaks(reader.runs(con, window, base=LEAK_BASE))
    return {"window": window.as_dict(), "leaks": [leak_dict(x) for x in found]}
