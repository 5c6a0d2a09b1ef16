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


class AgentwatchError(Exception):
    """Base of every error agentwatch raises deliberately."""


class ConfigError(AgentwatchError):
    """A configuration problem. ``problems`` holds one line per offending key."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class RequestError(AgentwatchError):
    http_status = 400


class DecodeError(RequestError):
    http_status = 400


class UnsupportedMediaType(RequestError):
    http_status = 415


class PayloadTooLarge(RequestError):
    http_status = 413


class Unauthenticated(RequestError):
    http_status = 401


class Unavailable(RequestError):
    """Not the client's fault: the same request will succeed later."""

    http_status = 503

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(Unavailable):
    pass


class StorageFull(Unavailable):
    pass


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
