"""Tenant names and rules, defined once in core: the door (deduplication keys) and the normalize
processor (the ``tenant`` column) read the same attributes and sanitise the same way."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from core.model import OtlpBatch, OtlpRecord
from core.tenants import TENANT_ATTRIBUTES, sanitize_tenant
from processors.normalize import conventions
from processors.normalize import processor as normalize
from receiver.otlp.handler import TenantKeys


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("acme", "acme"),
        ("acme corp/../x", "acme_corp_.._x"),
        (".hidden", "_hidden"),
        ("", "default"),
        ("é", "_"),
        ("a" * 100, "a" * 64),
    ],
)
def test_sanitize_tenant(raw: str, clean: str) -> None:
    assert sanitize_tenant(raw) == clean


def test_the_door_and_the_normaliser_read_the_same_tenant_attributes() -> None:
    assert TENANT_ATTRIBUTES == ("agentwatch.tenant", "tenant.id", "tenant")
    assert conventions.COLUMN_CANDIDATES["tenant"] is TENANT_ATTRIBUTES
    assert TenantKeys().names == TENANT_ATTRIBUTES
    assert TenantKeys(["org.slug", "tenant"]).names == (
        "org.slug",
        "tenant",
        "agentwatch.tenant",
        "tenant.id",
    )


@pytest.mark.parametrize(
    ("kind", "value", "tenant"),
    [
        ("string_value", "Acme Corp", "Acme_Corp"),
        ("int_value", 42, "42"),
        ("double_value", 1.5, "1.5"),
        ("bool_value", True, "true"),
    ],
)
def test_the_door_names_the_tenant_the_normaliser_stores(kind: str, value: object, tenant: str) -> None:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    setattr(resource_spans.resource.attributes.add(key="tenant.id").value, kind, value)
    span = resource_spans.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "agent_run"
    span.start_time_unix_nano, span.end_time_unix_nano = 1, 2
    assert TenantKeys().find(resource_spans.resource.attributes) == tenant
    table = normalize.create(normalize.Config(), None).to_table(OtlpBatch([OtlpRecord.from_request(request)]))
    assert table["tenant"].to_pylist() == [tenant]
