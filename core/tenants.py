"""Tenants: which attributes name a span's tenant, and how a raw tenant becomes a safe one.

Shared by the receivers' door (deduplication keys name the tenant a span will be stored under,
``receiver.otlp.handler.TenantKeys``) and the normalize processor (the ``tenant`` column), so
the two always agree. Configured names (``processors.normalize.attributes.tenant``) go before
the built-in ones; an ingest token's tenant overrides them all.
"""

from __future__ import annotations

import re

from core.model import DEFAULT_TENANT

TENANT_ATTRIBUTES: tuple[str, ...] = ("agentwatch.tenant", "tenant.id", "tenant")
"""Built-in attribute names for the tenant, most specific first."""

_TENANT_BAD = re.compile(r"[^A-Za-z0-9._-]")


def sanitize_tenant(tenant: str) -> str:
    """A tenant safe as the directory name ``tenant=<t>``: [A-Za-z0-9._-], ≤64, no leading '.'."""
    clean = _TENANT_BAD.sub("_", tenant)[:64]
    if clean.startswith("."):
        clean = "_" + clean[1:]
    return clean or DEFAULT_TENANT
