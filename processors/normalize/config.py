"""The normalize processor's settings (``Config``, its defaults and ``validate``): light to import,
so a process that only reads or checks a config never loads the decoding kernels."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.configmodel import STRICT
from core.model import OPERATIONS
from processors.normalize import conventions as conv

_MAPPABLE = ", ".join(conv.MAPPABLE_COLUMNS)
_OPERATIONS = ", ".join(OPERATIONS)


@dataclass(frozen=True)
class Config:
    """Settings of the normalize processor; every field has a working default."""

    __pydantic_config__ = STRICT

    attributes: dict[str, list[str]] = field(default_factory=dict)
    """Canonical column → extra attribute names, tried in order BEFORE the built-in names.
    Span attributes are searched first, then resource attributes. Default: none."""

    operations: dict[str, str] = field(default_factory=dict)
    """Span name → operation (one of model.OPERATIONS); wins over every convention. Default: none."""

    provider_aliases: dict[str, str] = field(default_factory=dict)
    """Provider spelling → canonical provider, merged over conventions.PROVIDER_ALIASES
    (case-insensitive). Default: none."""

    max_text_length: int = 8192
    """input_text/output_text are truncated to this many characters."""

    capture_text: bool = True
    """False stores no text people wrote or models answered: input_text/output_text are always
    null, and the attributes and events that carry messages (``conventions.REDACTED_*``, and the
    names mapped to input_text/output_text in ``attributes``) are left out of the attributes and
    events JSON. Error types and messages are kept."""

    max_attribute_value_length: int = 65536
    """Characters kept of a string attribute value (strings in arrays/kvlists too); the batch is
    never rejected for it. See processors.normalize.limits."""

    max_attribute_count: int = 1024
    """Attributes kept per span, per event and per resource, and entries per kvlist value, first
    sent first kept. The default is above the OpenTelemetry SDK's 128 because flattened message
    lists (OpenInference) are long."""

    max_attribute_key_length: int = 1024
    """Characters kept of an attribute key (kvlist keys too). A longer key is cut, not dropped:
    the value is kept under the key's first characters. Real keys are names well below this."""

    max_array_length: int = 10000
    """Elements kept of an array value (any element type, nested arrays too), first sent first
    kept. The SDK has no such limit; 10,000 keeps embedding vectors (OpenInference
    ``embedding.embeddings.N.embedding.vector``: 1,536 to 4,096 numbers) whole."""

    max_events_per_span: int = 1024
    """Events kept per span, first sent first kept (the SDK's ``max_events_per_span``, whose
    default is 128). Higher because the GenAI conventions send one event per chat message, the
    answer (``gen_ai.choice``) last: keeping the first 128 would lose the output text of a long
    conversation."""

    def validate(self) -> list[str]:
        problems: list[str] = []
        for column, names in self.attributes.items():
            if column not in conv.MAPPABLE_COLUMNS:
                problems.append(f"attributes.{column}: not a mappable column; one of {_MAPPABLE}")
            problems.extend(
                f"attributes.{column}.{i}: attribute name must not be empty"
                for i, name in enumerate(names)
                if not name.strip()
            )
        for span_name, operation in self.operations.items():
            if not span_name:
                problems.append("operations: a span name must not be empty")
            if operation not in OPERATIONS:
                problems.append(
                    f"operations.{span_name}: {operation!r} is not an operation; one of {_OPERATIONS}"
                )
        for alias, provider in self.provider_aliases.items():
            if not alias.strip():
                problems.append("provider_aliases: an alias must not be empty")
            if not provider.strip():
                problems.append(f"provider_aliases.{alias}: the canonical provider must not be empty")
        if self.max_text_length < 1:
            problems.append("max_text_length: must be at least 1 (use capture_text: false to drop text)")
        problems.extend(f"{name}: must be at least 1" for name, value in self._limits() if value < 1)
        return problems

    def _limits(self) -> list[tuple[str, int]]:
        return [
            ("max_attribute_value_length", self.max_attribute_value_length),
            ("max_attribute_count", self.max_attribute_count),
            ("max_attribute_key_length", self.max_attribute_key_length),
            ("max_array_length", self.max_array_length),
            ("max_events_per_span", self.max_events_per_span),
        ]
