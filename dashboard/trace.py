"""One run's trace: its spans in waterfall order (depth-first by start, with their depth and
offset from the trace's start), the run's outcome and failing span, its judge scores and its log
records."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import duckdb
import orjson

from core.model import SPAN_COLUMNS
from dashboard.reader import Reader
from storage.catalog import rows_of
from storage.runs import runs_of_trace

SPAN_FIELDS = tuple(
    c
    for c in SPAN_COLUMNS
    if c not in ("trace_id", "start_time_unix_nano", "end_time_unix_nano", "agent_name_derived")
)
"""The canonical columns a span shows (the trace id is the page's; nanosecond times repeat
``start_time``/``end_time``)."""
MAX_SPANS = 2000
"""Spans of one trace a page shows (the first by start time); ``spans_total`` says how many
there are, so a trace of a hundred thousand spans cannot fill the server's memory."""
MAX_LOGS = 500
"""Log records of one trace a page shows (the first by time); ``logs_total`` says how many."""
LOG_FIELDS = ("time", "severity_text", "severity_number", "event_name", "span_id", "service_name", "body",
              "attributes")  # fmt: skip
RUN_FIELDS = (
    "tenant",
    "agent",
    "agent_id",
    "agent_name",
    "user_id",
    "start_time",
    "duration_ms",
    "outcome",
    "failure_type",
    "failing_span_id",
    "error_message",
    "span_count",
    "tool_calls",
    "models",
)


class TraceNotFound(LookupError):
    """No span of this trace id in the tenants the caller may read."""


def trace_view(reader: Reader, trace_id: str, tenants: frozenset[str] | None) -> dict[str, Any]:
    """The trace ``trace_id`` (32 hex digits) among ``tenants`` (None: every tenant). Tenants are
    kept apart: when several of them hold a trace of this id, the page is the first's (by name)
    and ``other_tenants`` names the others (each one's page: ``?tenant=``)."""
    trace_id = trace_id.lower()
    where = "trace_id = $t AND list_contains($tenants, tenant)"
    params: dict[str, Any] = {"t": trace_id}
    with reader.connection() as con:
        # The run partials say which tenant and day partitions hold the trace: the spans are read
        # from those alone, not looked for in every file.
        places = [(t, d) for t, d in reader.places(con, trace_id) if tenants is None or t in tenants]
        if places:
            holders = sorted({t for t, _ in places})
        else:  # spans whose partials are not written yet (or never are): every file is read
            allowed = "" if tenants is None else " AND list_contains($allowed, tenant)"
            bound = params if tenants is None else {**params, "allowed": sorted(tenants)}
            rows = con.execute(f"SELECT DISTINCT tenant FROM spans WHERE trace_id = $t{allowed}", bound)
            holders = sorted(t for (t,) in rows.fetchall())
        if not holders:
            raise TraceNotFound(trace_id)
        params["tenants"] = holders[:1]
        places = [(t, d) for t, d in places if t == holders[0]]
        pruned = where
        if places:
            pruned += " AND list_contains($places, {'tenant': tenant, 'date': date})"
            params_spans = {**params, "places": [{"tenant": t, "date": d} for t, d in places]}
        else:  # spans whose partials are not written yet (or never are): every file is read
            params_spans = params
        ((total,),) = con.execute(f"SELECT count(*) FROM spans WHERE {pruned}", params_spans).fetchall()
        cursor = con.execute(
            f"SELECT {', '.join(SPAN_FIELDS)} FROM spans WHERE {pruned}"
            f" ORDER BY start_time, span_id LIMIT {MAX_SPANS}",
            params_spans,
        )
        spans = [dict(zip(SPAN_FIELDS, row, strict=True)) for row in cursor.fetchall()]
        if not spans:
            raise TraceNotFound(trace_id)
        # (every partial of the trace is in ``places``, when known)
        found = runs_of_trace(con, trace_id, places=places or None)
        runs = [r for r in found if r["tenant"] == holders[0]]
        scores = rows_of(
            con,
            "SELECT span_id, evaluator, dimension, value, label, explanation, judge_model, time FROM scores"
            f" WHERE {where} ORDER BY time, evaluator, dimension",
            params,
        )
        logs, logs_total = _logs(con, where, params, spans[0]["tenant"], {d for _, d in places})
    for span in spans:
        for key in ("attributes", "resource_attributes", "events"):
            span[key] = orjson.loads(span[key]) if span[key] else ({} if key != "events" else [])
    ordered = _waterfall(spans)
    start = min(s["start_time"] for s in spans)
    for s in ordered:
        s["offset_ms"] = (s["start_time"] - start).total_seconds() * 1000
    run = {k: runs[0][k] for k in RUN_FIELDS} if runs else None
    return {
        "trace_id": trace_id,
        "tenant": spans[0]["tenant"],
        "run": run,
        "duration_ms": max((s["end_time"] - start).total_seconds() * 1000 for s in spans),
        "spans": ordered,
        "spans_total": int(total),
        "scores": scores,
        "logs": logs,
        "logs_total": logs_total,
        "other_tenants": holders[1:],
    }


def _logs(
    con: duckdb.DuckDBPyConnection, where: str, params: dict[str, Any], tenant: str, days: set[date]
) -> tuple[list[dict[str, Any]], int]:
    """The trace's log records (the first ``MAX_LOGS`` by time) of its tenant, and how many there
    are: read from the days its spans are stored under and the days either side (a record is
    filed under its own time), never every file."""
    near = sorted({d + timedelta(days=k) for d in days for k in (-1, 0, 1)})
    scoped = f"{where} AND tenant = $tenant" + (" AND list_contains($days, date)" if near else "")
    bound = {**params, "tenant": tenant, **({"days": near} if near else {})}
    ((total,),) = con.execute(f"SELECT count(*) FROM logs WHERE {scoped}", bound).fetchall()
    if not total:
        return [], 0
    rows = rows_of(
        con,
        f"SELECT {', '.join(LOG_FIELDS)} FROM logs WHERE {scoped} ORDER BY time, record_id LIMIT {MAX_LOGS}",
        bound,
    )
    for row in rows:
        row["attributes"] = orjson.loads(row["attributes"]) if row["attributes"] else {}
    return rows, int(total)


def _waterfall(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Depth-first, children by start time; a span whose parent is not in the trace is a root."""
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        parent = s["parent_span_id"] if s["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(s)
    for group in children.values():
        group.sort(key=lambda s: (s["start_time"], s["span_id"]))
    out: list[dict[str, Any]] = []
    stack = [(s, 0) for s in reversed(children.get(None, []))]
    seen: set[str] = set()
    while stack:
        span, depth = stack.pop()
        if span["span_id"] in seen:  # a span listed twice (a duplicate id) is drawn once
            continue
        seen.add(span["span_id"])
        span["depth"] = depth
        out.append(span)
        stack.extend((c, depth + 1) for c in reversed(children.get(span["span_id"], [])))
    out += [dict(s, depth=0) for s in spans if s["span_id"] not in seen]  # cycles: still shown
    return out
