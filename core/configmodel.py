"""How a component's ``Config`` is declared and turned from YAML into a frozen dataclass.

A component config is a stdlib frozen dataclass with ``__pydantic_config__ = STRICT`` so that
unknown keys are errors, plus a ``validate()`` method returning problems as ``"key: message"``
strings, the key relative to the component (``"protocols.grpc.endpoint: port 70000 ..."``).
``build_config`` does the type checking with pydantic and turns its errors into the same form.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

STRICT = ConfigDict(extra="forbid", strict=False)

T = TypeVar("T")


class Validating(Protocol):
    def validate(self) -> list[str]: ...


def _key(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(section)"


def build_config(cls: type[T], data: Any) -> tuple[T | None, list[str]]:
    """Build ``cls`` from YAML data; return the config and its problems as ``key: message``.

    Every problem at once: when some values have the wrong type, the config is built again
    without them (their defaults instead) so that ``validate()`` still reports the rest."""
    adapter = TypeAdapter(cls)
    problems: list[str] = []
    wrong: set[str] = set()
    data = {} if data is None else data
    for _ in range(_RETRIES):
        try:
            config = adapter.validate_python(data)
        except ValidationError as exc:
            errors = exc.errors()
            for err in errors:
                loc = tuple(err["loc"])
                if _key(loc) in wrong:
                    continue  # left out after a first problem ("Field required" now): said already
                wrong.add(_key(loc))
                if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
                    problems.append(f"{_key(loc)}: unknown key")
                else:
                    msg = err["msg"].removeprefix("Value error, ")
                    problems.append(f"{_key(loc)}: {msg}")
            problems = list(dict.fromkeys(problems))  # a retry meets the unremovable ones again
            data, removed = _without(data, [tuple(err["loc"]) for err in errors])
            if not removed:
                return None, problems
            continue
        validate = getattr(config, "validate", None)
        found = list(validate()) if callable(validate) else []
        # A value that had the wrong type was left out: what validate() says of its default is moot.
        problems = list(dict.fromkeys([*problems, *(p for p in found if p.partition(":")[0] not in wrong)]))
        return (None if wrong else config), problems
    return None, list(dict.fromkeys(problems))


_RETRIES = 4


def _without(data: Any, locations: list[tuple[int | str, ...]]) -> tuple[Any, bool]:
    """``data`` (YAML mappings and lists) with the values at ``locations`` removed, copied."""
    data = copy.deepcopy(data)
    removed = False
    for loc in locations:
        node = data
        for part in loc[:-1]:
            in_dict = isinstance(node, dict) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if in_dict or in_list:
                node = node[part]
            else:
                node = None
                break
        if isinstance(node, dict) and loc and loc[-1] in node:
            del node[loc[-1]]
            removed = True
    return data, removed


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
