"""Ingest tokens for the receiver tests: two tenants' tokens, the ``receivers.otlp.auth`` config
that maps them (one inline, one from a tokens file), and a request claiming a tenant."""

from __future__ import annotations

import httpx

from receiver.otlp.otlp_json import parse_json_request
from tests.helpers.otlp import json_span, otlp_json

ACME = "acme-token-0123456789abcdef"
GLOBEX = "globex-token-0123456789abcdef"
AUTH = f"""    auth:
      tokens:
        - token: {ACME}
          tenant: acme
      tokens_file: TOKENS_FILE
"""


def proto_body(tenant_claim: str) -> bytes:
    span = json_span("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    doc = otlp_json(span)
    doc["resourceSpans"][0]["resource"]["attributes"][1]["value"]["stringValue"] = tenant_claim  # type: ignore[index]
    return parse_json_request(httpx.Request("POST", "/", json=doc).content).SerializeToString()
