"""The cost processor's settings: prices that win over the price library's, and per-tenant
adjustments. Every price is US dollars per million tokens."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.configmodel import STRICT


@dataclass(frozen=True)
class ModelPrice:
    """A model's price per million tokens (a negotiated rate, a self-hosted model's cost)."""

    __pydantic_config__ = STRICT
    input: float
    output: float
    cached_input: float | None = None
    """Cache reads; default: the input price."""
    cache_write_input: float | None = None
    """Cache writes; default: the input price."""
    provider: str | None = None
    """Only spans of this provider (``gen_ai.provider.name`` as normalised); default: any."""

    def validate(self) -> list[str]:
        prices = {
            "input": self.input,
            "output": self.output,
            "cached_input": self.cached_input,
            "cache_write_input": self.cache_write_input,
        }
        return [f"{k}: must be at least 0" for k, v in prices.items() if v is not None and v < 0]


@dataclass(frozen=True)
class Config:
    """Settings of the cost processor; with none, prices come from ``genai-prices`` alone."""

    __pydantic_config__ = STRICT
    models: dict[str, ModelPrice] = field(default_factory=dict)
    """Model name (as spans report it, response or request model) → its price; wins over the
    price library. Default: none."""
    tenant_multipliers: dict[str, float] = field(default_factory=dict)
    """Tenant → factor on every computed cost (0.8: a 20% discount; 1.1: a 10% markup). Reported
    costs are kept as reported. Default: none."""

    def validate(self) -> list[str]:
        problems = [f"models.{name}.{p}" for name, price in self.models.items() for p in price.validate()]
        problems += ["models: a model name must not be empty" for name in self.models if not name.strip()]
        problems += [
            f"tenant_multipliers.{tenant}: must be at least 0"
            for tenant, factor in self.tenant_multipliers.items()
            if factor < 0
        ]
        return problems
