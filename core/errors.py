"""Every exception agentwatch raises on purpose, in one place.

AgentwatchError
├── ConfigError          bad configuration: names the file, line and YAML key
├── RequestError         a client sent something the receiver cannot accept
│   ├── DecodeError          undecodable body (400 / INVALID_ARGUMENT)
│   ├── UnsupportedMediaType unknown Content-Type or Content-Encoding (415)
│   ├── PayloadTooLarge      body over the limit after decompression (413 / RESOURCE_EXHAUSTED)
│   ├── Unauthenticated      missing or invalid ingest token (401 / UNAUTHENTICATED)
│   └── Unavailable          retry later (503 + Retry-After / UNAVAILABLE + RetryInfo)
│       ├── Overloaded           too much acknowledged data is waiting to be converted
│       └── StorageFull          the disk is (nearly) full: refuse rather than corrupt
├── StorageError         the data directory cannot be written or read
├── QueryError           SQL given to ``agentwatch query`` failed
├── DatasetError         an eval dataset with problems: file, line and field
├── TargetError          an agent target that could not answer, or a bad target spec
└── Cancelled            work given up because the service is shutting down
"""

from __future__ import annotations

from google.rpc import code_pb2


class AgentwatchError(Exception):
    """Base of every error agentwatch raises deliberately."""


class ConfigError(AgentwatchError):
    """A configuration problem. ``problems`` holds one line per offending key."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class RequestError(AgentwatchError):
    """A refused request. Each class knows how every transport answers it, in one place: the
    HTTP status, the gRPC status code (``google.rpc.Code`` numbers) and the ``reason`` label of
    ``agentwatch_receiver_refused_requests_total``."""

    http_status = 400
    grpc_code = code_pb2.INVALID_ARGUMENT
    reason = "invalid_request"


class DecodeError(RequestError):
    reason = "decode_error"


class UnsupportedMediaType(RequestError):
    http_status = 415
    reason = "unsupported_media_type"


class PayloadTooLarge(RequestError):
    http_status = 413
    grpc_code = code_pb2.RESOURCE_EXHAUSTED
    reason = "payload_too_large"


class Unauthenticated(RequestError):
    http_status = 401
    grpc_code = code_pb2.UNAUTHENTICATED
    reason = "unauthenticated"


class Forbidden(RequestError):
    """Authenticated, but not allowed what was asked (another tenant's data)."""

    http_status = 403
    grpc_code = code_pb2.PERMISSION_DENIED
    reason = "forbidden"


class Unavailable(RequestError):
    """Not the client's fault: the same request will succeed later (HTTP ``Retry-After``, gRPC
    ``RetryInfo``)."""

    http_status = 503
    grpc_code = code_pb2.UNAVAILABLE
    reason = "unavailable"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(Unavailable):
    reason = "overloaded"


class StorageFull(Unavailable):
    reason = "storage_full"


class StorageError(AgentwatchError):
    pass


class QueryError(AgentwatchError):
    pass


class DatasetError(AgentwatchError):
    """A dataset file with problems, each ``file:line: field: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class TargetError(AgentwatchError):
    """An agent target that could not answer (after its retries), or a bad target spec."""


class Cancelled(AgentwatchError):
    """Work given up because the service is shutting down (a scheduled eval run, say)."""
