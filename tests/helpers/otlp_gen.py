"""Random OTLP requests (hypothesis strategies) and equivalent re-encodings of their bytes.

``requests()`` favours what the normalizer reacts to: the conventions' attribute names, values
of every AnyValue kind (unicode, quotes, control characters, empty strings, NaN, nested
arrays/kvlists, bytes), duplicate keys, events with the names rules read, missing fields, odd
ids and out-of-range enums. ``reencode`` writes the same message differently, as other
protobuf encoders may: fields reordered, unknown fields and groups inserted, padded varints,
a singular message split in two (protobuf merges them), a scalar sent twice (the last wins).
"""

from __future__ import annotations

import random

from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from processors.normalize import conventions as conv

NAMES = sorted(
    {name for names in (*conv.COLUMN_CANDIDATES.values(), *conv.SIGNAL_CANDIDATES.values()) for name in names}
    | {"service.name", "gen_ai.prompt.1.content", "exception.type", "exception.message", "content", "message"}
)
TEXTS = ["", '"', "\\", "\x00\x1f\x7f", "é\u2028😀", "chat", "tool", "LLM", "true", "12", "1.5", "gpt-4o",
         "openai", "AWS.Bedrock", "-32602", "0", '{"isError": true}', '[{"role":"user","content":"hi"}]',
         '{"input": 3, "output": "4"}']  # fmt: skip
text = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(TEXTS)
keys = st.sampled_from(NAMES) | text
int64s = st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 3)
span_names = st.sampled_from(["chat", "chat gpt-4o", "tools/call get", "execute_tool x", "invoke_agent A",
                              "agent_run", "mcp", "", "my-step"]) | text  # fmt: skip
event_names = st.sampled_from(
    sorted(conv.INPUT_EVENTS | conv.OUTPUT_EVENTS | {conv.DETAILS_EVENT, "exception", "x"})
)


def _array(values: list[AnyValue]) -> AnyValue:
    value = AnyValue()
    value.array_value.values.extend(values)
    return value


def _kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
    value = AnyValue()
    value.kvlist_value.values.extend(KeyValue(key=k, value=v) for k, v in pairs)
    return value


def any_values(depth: int = 2) -> st.SearchStrategy[AnyValue]:
    scalars = st.one_of(
        text.map(lambda s: AnyValue(string_value=s)),
        st.booleans().map(lambda b: AnyValue(bool_value=b)),
        int64s.map(lambda i: AnyValue(int_value=i)),
        st.floats().map(lambda f: AnyValue(double_value=f)),
        st.binary(max_size=6).map(lambda b: AnyValue(bytes_value=b)),
        st.just(AnyValue()),
    )
    if depth == 0:
        return scalars
    inner = any_values(depth - 1)
    return (
        scalars
        | st.lists(inner, max_size=3).map(_array)
        | st.lists(st.tuples(keys, inner), max_size=3).map(_kvlist)
    )


def key_values(max_size: int) -> st.SearchStrategy[list[KeyValue]]:
    return st.lists(st.tuples(keys, any_values()), max_size=max_size).map(
        lambda pairs: [KeyValue(key=k, value=v) for k, v in pairs]
    )


@st.composite
def spans(draw: st.DrawFn, trace_ids: st.SearchStrategy[bytes]) -> Span:
    span = Span(trace_id=draw(trace_ids), name=draw(span_names), kind=draw(st.integers(-2, 8)))
    span.span_id = draw(st.sampled_from([b"\1" * 8, b"\2" * 8, b"\3" * 8]) | st.binary(max_size=9))
    if draw(st.booleans()):
        span.parent_span_id = draw(st.sampled_from([b"\1" * 8, b"\2" * 8]) | st.binary(max_size=9))
    span.start_time_unix_nano = draw(st.integers(0, 2**63 - 6))
    span.end_time_unix_nano = draw(st.integers(0, 2**63 - 1) | st.just(span.start_time_unix_nano + 5))
    span.attributes.extend(draw(key_values(10)))
    for _ in range(draw(st.integers(0, 2))):
        event = span.events.add(name=draw(event_names | text), time_unix_nano=draw(st.integers(0, 2**64 - 1)))
        event.attributes.extend(draw(key_values(4)))
    if draw(st.booleans()):
        span.status.code = draw(st.integers(-2, 4))
        span.status.message = draw(text)
    return span


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    trace_ids = st.sampled_from([b"\xaa" * 16, b"\xbb" * 16]) | st.binary(max_size=17)
    for _ in range(draw(st.integers(0, 3))):
        resource_spans = request.resource_spans.add()
        if draw(st.booleans()):
            resource_spans.resource.attributes.extend(draw(key_values(5)))
        for _ in range(draw(st.integers(0, 2))):
            scope_spans = resource_spans.scope_spans.add()
            if draw(st.booleans()):
                scope_spans.scope.name = draw(text)
            scope_spans.spans.extend(draw(st.lists(spans(trace_ids), max_size=4)))
    return request


# --- re-encoding ------------------------------------------------------------------------------

# Message-typed fields per message: field → (message, repeated); other fields are scalars.
_MESSAGES: dict[str, dict[int, tuple[str, bool]]] = {
    "Request": {1: ("ResourceSpans", True)},
    "ResourceSpans": {1: ("Resource", False), 2: ("ScopeSpans", True)},
    "Resource": {1: ("KeyValue", True)},
    "ScopeSpans": {1: ("Scope", False), 2: ("Span", True)},
    "Scope": {3: ("KeyValue", True)},
    "Span": {9: ("KeyValue", True), 11: ("Event", True), 13: ("Link", True), 15: ("Status", False)},
    "Event": {3: ("KeyValue", True)},
    "Link": {},
    "Status": {},
    "KeyValue": {2: ("AnyValue", False)},
    "AnyValue": {5: ("ArrayValue", False), 6: ("KeyValueList", False)},
    "ArrayValue": {1: ("AnyValue", True)},
    "KeyValueList": {1: ("KeyValue", True)},
}


def varint(value: int, pad: int = 0) -> bytes:
    """``value`` (as uint64) as a varint, with up to ``pad`` redundant bytes (10 at most)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append(value & 0x7F)
        value >>= 7
        if not value:
            break
    out.extend([0] * min(pad, 10 - len(out)))
    for i in range(len(out) - 1):
        out[i] |= 0x80
    return bytes(out)


def _read_varint(data: bytes, p: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[p]
        value |= (byte & 0x7F) << shift
        shift += 7
        p += 1
        if byte < 0x80:
            return value, p


def fields(data: bytes) -> list[tuple[int, int, bytes]]:
    """(field number, wire type, value bytes) of each field of a canonically encoded message."""
    out, p = [], 0
    while p < len(data):
        tag, p = _read_varint(data, p)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            _, end = _read_varint(data, p)
        elif wire_type == 2:
            length, p = _read_varint(data, p)
            end = p + length
        else:
            end = p + (8 if wire_type == 1 else 4)
        out.append((number, wire_type, data[p:end]))
        p = end
    return out


def _encode(number: int, wire_type: int, value: bytes, rng: random.Random) -> bytes:
    tag = varint(number << 3 | wire_type, pad=rng.choice([0, 0, 0, 1]))
    if wire_type == 0:
        return tag + varint(_read_varint(value, 0)[0], pad=rng.choice([0, 0, 2, 9]))
    if wire_type == 2:
        return tag + varint(len(value), pad=rng.choice([0, 0, 1])) + value
    return tag + value


def _unknown(rng: random.Random, depth: int = 0) -> bytes:
    number = rng.choice([17, 99, 1000, 2**29 - 1])
    wire_type = rng.choice([0, 1, 2, 5, 3] if depth < 2 else [0, 1, 2, 5])
    if wire_type == 3:  # a group, nested fields and all
        inner = b"".join(_unknown(rng, depth + 1) for _ in range(rng.randint(0, 2)))
        return varint(number << 3 | 3) + inner + varint(number << 3 | 4)
    payload = {
        0: varint(rng.getrandbits(64)),
        1: rng.randbytes(8),
        2: varint(3) + b"abc",
        5: rng.randbytes(4),
    }
    return varint(number << 3 | wire_type) + payload[wire_type]


def reencode(data: bytes, message: str, rng: random.Random, split: float = 0.2) -> bytes:
    """Another encoding of the same ``message``; ``split`` is the chance a singular message
    field is sent in two parts."""
    schema = _MESSAGES[message]
    items: list[tuple[int, bytes]] = []
    for number, wire_type, value in fields(data):
        sub, repeated = schema.get(number, ("", True))
        if sub and wire_type == 2:
            if not repeated and rng.random() < split:
                parts = fields(value)
                cut = rng.randint(0, len(parts))
                for chunk in (parts[:cut], parts[cut:]):
                    piece = b"".join(_encode(*part, rng) for part in chunk)
                    items.append((number, _encode(number, 2, reencode(piece, sub, rng, split), rng)))
                continue
            value = reencode(value, sub, rng, split)
        elif not sub and wire_type in (0, 2) and rng.random() < 0.1:
            items.append((number, _encode(number, wire_type, varint(7) if wire_type == 0 else b"xx", rng)))
        items.append((number, _encode(number, wire_type, value, rng)))
    # Shuffle, keeping the order among fields of the same number (repeated order, last wins).
    by_number: dict[int, list[bytes]] = {}
    for number, raw in items:
        by_number.setdefault(number, []).append(raw)
    order = [number for number, _ in items]
    rng.shuffle(order)
    out = [by_number[number].pop(0) for number in order]
    for _ in range(rng.choice([0, 0, 1, 2])):
        out.insert(rng.randint(0, len(out)), _unknown(rng))
    return b"".join(out)
