"""SQL over what spans carry in their JSON columns: one attribute, and the span events of a name.

    SELECT tenant, e.time_unix_nano, {attr_sql("e.attributes", "gen_ai.evaluation.name")}
    FROM ({events_sql("gen_ai.evaluation.result", "tenant")})
"""

from __future__ import annotations

_EVENT_SHAPE = '[{"name": "VARCHAR", "time_unix_nano": "UBIGINT", "attributes": "JSON"}]'


def attr_sql(json: str, name: str) -> str:
    """SQL: the attribute ``name`` of the JSON object ``json`` (an expression), as text."""
    return f"""json_extract_string({json}, '$."{name}"')"""


def events_sql(name: str, columns: str, where: str = "true", source: str = "spans") -> str:
    """SQL: a relation of the spans' events named ``name``, one row each: the spans' ``columns``
    and ``e`` (``name``, ``time_unix_nano``, ``attributes`` as JSON), of the spans of ``source``
    (a relation of span rows) ``where`` says. Only spans whose events mention the name are parsed."""
    return f"""
        SELECT * FROM (
            SELECT {columns}, unnest(from_json(events, '{_EVENT_SHAPE}')) AS e
            FROM {source} WHERE ({where}) AND contains(events, '{name}')
        ) WHERE e.name = '{name}'"""
