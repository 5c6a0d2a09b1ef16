"""Each refusal answers the same on every transport: one table, on the error classes."""

from __future__ import annotations

import grpc
from google.rpc import code_pb2

from core.errors import (
    DecodeError,
    Forbidden,
    Overloaded,
    PayloadTooLarge,
    RequestError,
    StorageFull,
    Unauthenticated,
    UnsupportedMediaType,
)
from receiver.otlp.grpc_transport import STATUS_CODES


def test_wire_codes() -> None:
    table = {
        cls.__name__: (cls.http_status, STATUS_CODES[cls.grpc_code], cls.reason)
        for cls in (
            DecodeError,
            UnsupportedMediaType,
            PayloadTooLarge,
            Unauthenticated,
            Forbidden,
            Overloaded,
            StorageFull,
        )
    }
    assert table == {
        "DecodeError": (400, grpc.StatusCode.INVALID_ARGUMENT, "decode_error"),
        "UnsupportedMediaType": (415, grpc.StatusCode.INVALID_ARGUMENT, "unsupported_media_type"),
        "PayloadTooLarge": (413, grpc.StatusCode.RESOURCE_EXHAUSTED, "payload_too_large"),
        "Unauthenticated": (401, grpc.StatusCode.UNAUTHENTICATED, "unauthenticated"),
        "Forbidden": (403, grpc.StatusCode.PERMISSION_DENIED, "forbidden"),
        "Overloaded": (503, grpc.StatusCode.UNAVAILABLE, "overloaded"),
        "StorageFull": (503, grpc.StatusCode.UNAVAILABLE, "storage_full"),
    }
    assert RequestError.grpc_code == code_pb2.INVALID_ARGUMENT
