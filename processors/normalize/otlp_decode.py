"""OTLP protobuf values → plain Python values (and from there JSON), in as few calls as possible.

The columnar decoder (``processors.normalize.wire``) handles strings, ints and bools itself; these give
the Python value of everything else (once per distinct value) and whole attribute dicts and
event lists for the spans whose rules read them (``processors.normalize.error_text``). One
``WhichOneof`` per value, a fast path for the common scalar kinds, recursion only for
arrays/kvlists.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

# Scalar kinds whose field value is already the JSON-ready Python value.
# (string_value_strindex only appears in profiles; kept as the raw index rather than dropped.)
_SCALARS = frozenset({"string_value", "bool_value", "int_value", "double_value", "string_value_strindex"})


def any_value(value: AnyValue) -> Any:
    """AnyValue → str | bool | int | float | list | dict | None; bytes become base64 text."""
    kind = value.WhichOneof("value")
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    return base64.b64encode(value.bytes_value).decode("ascii")


def attributes_dict(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """Key/value pairs → dict (a repeated key keeps its last value, as OTel SDKs do)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        value = pair.value
        # Most attributes are non-empty strings: reading string_value first skips WhichOneof
        # and the any_value call for them ("" means "not a string, or an empty one").
        text = value.string_value
        out[pair.key] = text if text else any_value(value)
    return out


def events_list(events: Iterable[Span.Event]) -> list[dict[str, Any]]:
    """Span events as ``{name, time_unix_nano, attributes}`` dicts (JSON-ready)."""
    return [
        {"name": ev.name, "time_unix_nano": ev.time_unix_nano, "attributes": attributes_dict(ev.attributes)}
        for ev in events
    ]
