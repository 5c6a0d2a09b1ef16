"""How a component's ``Config`` is declared and turned from YAML into a frozen dataclass.

A component config is a stdlib frozen dataclass with ``__pydantic_config__ = STRICT`` so that
unknown keys are errors, plus a ``validate()`` method returning problems as ``"key: message"``
strings, the key relative to the component (``"protocols.grpc.endpoint: port 70000 ..."``).
``build_config`` does the type checking with pydantic and turns its errors into the same form.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

STRICT = ConfigDict(extra="forbid", strict=False)

T = TypeVar("T")


class Validating(Protocol):
    def validate(self) -> list[str]: ...


def _key(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(section)"


def build_config(cls: type[T], data: Any) -> tuple[T | None, list[str]]:
    """Build ``cls`` from YAML data; return the config and its problems as ``key: message``."""
    try:
        config = TypeAdapter(cls).validate_python({} if data is None else data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
                problems.append(f"{_key(loc)}: unknown key")
            else:
                msg = err["msg"].removeprefix("Value error, ")
                problems.append(f"{_key(loc)}: {msg}")
        return None, problems
    validate = getattr(config, "validate", None)
    problems = list(validate()) if callable(validate) else []
    return config, problems


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` → (host, port); raises ValueError with a message fit for a config error."""
    host, sep, port_text = endpoint.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{endpoint!r} is not host:port")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    return host.strip("[]"), port
