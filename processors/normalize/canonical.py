"""The canonical columns that come from attributes, for a whole batch at once.

- plain columns (agent_id, user_id, model, ...) are the slot values, gathered as bytes
  (``slots.attr_strings``);
- rules (operation, agent/tool name fallbacks, errors and texts, provider aliases, tenant,
  synthetic) are the existing ``derive``/``resolve`` functions, run once per distinct
  combination of the inputs they read, not once per span;
- token usage is vectorised for int-valued tokens; anything else goes through ``derive.usage``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from core.model import LLM_OPERATIONS, TOOL_OPERATIONS, as_str
from processors.normalize import derive, error_text
from processors.normalize.columns import NULL, Pool, Ranges, choose, floats, ints
from processors.normalize.decoded import Decoded, col
from processors.normalize.kernels import has_child, intern_ranges
from processors.normalize.resolve import Index, ProviderAliases, as_bool
from processors.normalize.slots import Resolved, attr_strings, derived_strings, per_group, pick
from processors.normalize.wire import (
    A_INT,
    A_TYPE,
    S_CODE,
    S_NAME_LEN,
    S_NAME_OFF,
    S_REQ,
    T_DOUBLE,
    T_INT,
    T_NONE,
)

PLAIN_COLUMNS = ("agent_id", "agent_version", "agent_owner", "user_id", "session_id", "team", "org",
                 "workspace", "project", "workflow", "model", "eval_run_id", "eval_case_id")  # fmt: skip
_OPERATION_INPUTS = ("sig.mcp_method", "sig.gen_ai_operation", "sig.openinference_kind", "sig.traceloop_kind",
                     "sig.llm_request_type", "sig.langfuse_type", "model")  # fmt: skip
_TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cached_tokens", "total_tokens", "cache_write_tokens")
_USAGE_INPUTS = (*_TOKEN_COLUMNS, "cost_usd", "sig.usage_details", "sig.cost_details")
_T = len(_TOKEN_COLUMNS)
"""Token slots of ``_USAGE_INPUTS``; the cost is slot ``_T``, the Langfuse details the two after."""
# Slots whose values rules read; the others are only copied into columns.
_RULE_SLOTS = tuple(
    dict.fromkeys(
        (
            *_OPERATION_INPUTS,
            "sig.entity_name",
            "sig.trace_name",
            *error_text.ERROR_INPUTS,
            *(slot for slots in error_text.TEXT_INPUTS for slot in slots),
            "provider",
            "synthetic",
            "tenant",
            "sig.invocation_parameters",
        )
    )
)
_SAFE_TOKENS = 1 << 62  # token counts below this add up without leaving int64


class Settings(Protocol):
    """What the rules need from the normalize processor: its config, compiled."""

    @property
    def config(self) -> Any: ...  # normalize.Config (capture_text, max_text_length)
    @property
    def index(self) -> Index: ...
    @property
    def overrides(self) -> dict[str, str]: ...
    @property
    def providers(self) -> ProviderAliases: ...
    def tenant(self, raw: str | None) -> str: ...


class Rules:
    """The attribute-driven columns of one decoded batch; text made in Python goes to ``pool``."""

    def __init__(self, decoded: Decoded, settings: Settings) -> None:
        self.d = decoded
        self.settings = settings
        self.r = Resolved(decoded, settings.index, _RULE_SLOTS)
        self.pool = Pool()
        spans = decoded.spans
        self.name_id, first = intern_ranges(decoded.buf, col(spans, S_NAME_OFF), col(spans, S_NAME_LEN))
        self.names = [decoded.text(spans[s, S_NAME_OFF], spans[s, S_NAME_LEN]) for s in first.tolist()]
        code = spans[:, S_CODE]
        self.status = np.where((code >= 0) & (code < 3), code, 0)  # index into error_text.STATUSES

    def columns(self) -> dict[str, pa.Array | Ranges]:
        r = self.r
        out: dict[str, pa.Array | Ranges] = {
            column: attr_strings(self.d, r.attr(column), self.pool) for column in PLAIN_COLUMNS
        }
        self._request_model(out["model"])
        ops, op = self._operation()
        out["operation"] = choose(ops, op)
        out["agent_name"], out["agent_name_derived"], out["tool_name"] = self._names(ops, op)
        out.update(self._usage(np.isin(op, [i for i, x in enumerate(ops) if x in LLM_OPERATIONS])))
        tool = np.isin(op, [i for i, x in enumerate(ops) if x in TOOL_OPERATIONS])
        texts = error_text.columns(self, tool)
        out["error_type"], out["error_message"], out["input_text"], out["output_text"] = texts
        canonical = self.settings.providers.canonical
        providers, code = r.per_value("provider", lambda v: canonical(as_str(v) or ""), None)
        out["provider"] = choose(providers, code)
        flags, code = r.per_value("synthetic", as_bool, False)
        out["synthetic"] = pa.array(np.array(flags, bool)[code], pa.bool_())
        out["tenant"] = self._tenant()
        return out

    def _operation(self) -> tuple[list[str], np.ndarray]:
        """(operations, code per span) by derive.operation, once per distinct name and inputs."""
        keys = np.column_stack([self.name_id, self.r.vids(_OPERATION_INPUTS)])
        found = self.r.found
        overrides = self.settings.overrides
        results, group = per_group(
            keys,
            lambda row: derive.operation(self.names[row[0]], found(_OPERATION_INPUTS, row[1:]), overrides),
        )
        ops = sorted(set(results))
        return ops, np.array([ops.index(x) for x in results], np.int64)[group]

    def _names(self, ops: list[str], op: np.ndarray) -> tuple[Ranges, pa.Array, Ranges]:
        """agent_name, agent_name_derived and tool_name: the attribute, else derive's fallback
        where it applies. agent_name_derived: true when the name is the fallback's (a span,
        entity or trace name), false when an agent name attribute carried it, null without one."""
        r = self.r
        agent = attr_strings(self.d, r.attr("agent_name"), self.pool)
        explicit = agent.source != NULL
        agent_run = ops.index("agent_run") if "agent_run" in ops else -1
        need = ~explicit & ((op == agent_run) | r.has("sig.trace_name"))
        self._fallback(agent, need, op, ops, ("sig.entity_name", "sig.trace_name"), derive.agent_name)
        named = agent.source != NULL
        derived = pa.array(~explicit, pa.bool_(), mask=~named)
        tool = attr_strings(self.d, r.attr("tool_name"), self.pool)
        need = (tool.source == NULL) & np.isin(op, [i for i, x in enumerate(ops) if x in TOOL_OPERATIONS])
        self._fallback(tool, need, op, ops, ("sig.entity_name",), derive.tool_name)
        return agent, derived, tool

    def _fallback(
        self,
        out: Ranges,
        need: np.ndarray,
        op: np.ndarray,
        ops: list[str],
        slots: tuple[str, ...],
        rule: Callable[[str, str, dict[str, Any]], str | None],
    ) -> None:
        rows = np.flatnonzero(need)
        if not rows.size:
            return
        keys = np.column_stack([self.name_id[rows], op[rows], self.r.vids(slots)[rows]])
        found = self.r.found
        results, group = per_group(
            keys, lambda row: rule(self.names[row[0]], ops[row[1]], found(slots, row[2:]))
        )
        derived_strings(out, rows, results, group, self.pool)

    def _request_model(self, model: Ranges) -> None:
        """A span without a model attribute takes the model of its invocation parameters
        (OpenInference's ``llm.invocation_parameters``: a failed call has no response model)."""
        rows = np.flatnonzero((model.source == NULL) & self.r.has("sig.invocation_parameters"))
        if rows.size:
            found = self.r.found
            slots = ("sig.invocation_parameters",)
            results, group = per_group(
                self.r.vids(slots)[rows], lambda row: derive.request_model(found(slots, row))
            )
            derived_strings(model, rows, results, group, self.pool)

    def _usage(self, llm: np.ndarray) -> dict[str, pa.Array]:
        """Tokens and cost: on LLM spans only (``llm``), and only on leaves (_non_leaf).

        Int tokens and int/double costs without Langfuse details (nearly all spans) are
        computed here as derive.usage would; any other span (string tokens, a usage object) runs
        derive.usage itself. Spans with neither token attributes nor a usage object take the
        usage of a provider response in their output (_output_usage).
        """
        n = llm.shape[0]
        values = np.zeros((n, _T), np.int64)
        valid = np.zeros((n, _T + 1), bool)
        cost = np.zeros(n, np.float64)
        rows = np.flatnonzero(llm)
        win = self.r.attrs(_USAGE_INPUTS)[rows]
        kinds = pick(self.d.attrs, win, A_TYPE, T_NONE)
        raw = pick(self.d.attrs, win, A_INT, 0)
        tokens, sent = raw[:, :_T], win[:, :_T] >= 0
        fast = (win[:, _T + 1] < 0) & (win[:, _T + 2] < 0)
        fast &= ((kinds[:, :_T] == T_INT) | ~sent).all(axis=1)
        fast &= ((tokens > -_SAFE_TOKENS) & (tokens < _SAFE_TOKENS)).all(axis=1)
        fast &= (kinds[:, _T] == T_INT) | (kinds[:, _T] == T_DOUBLE) | (win[:, _T] < 0)
        sent &= fast[:, None]
        total = ~sent[:, 3] & (sent[:, 0] | sent[:, 1])  # derive.usage: total = input + output
        tokens[total, 3] = np.where(sent[total, 0], tokens[total, 0], 0) + np.where(
            sent[total, 1], tokens[total, 1], 0
        )
        sent[total, 3] = True
        values[rows] = tokens
        valid[rows, :_T] = sent
        as_int, as_double = fast & (kinds[:, _T] == T_INT), fast & (kinds[:, _T] == T_DOUBLE)
        cost[rows[as_int]] = raw[as_int, _T].astype(np.float64)
        cost[rows[as_double]] = raw[as_double, _T].view(np.float64)
        valid[rows, _T] = as_int | as_double
        for i in np.flatnonzero(~fast).tolist():  # string tokens, Langfuse details, ...
            found = {
                slot: self.d.value(a)
                for slot, a in zip(_USAGE_INPUTS, win[i].tolist(), strict=True)
                if a >= 0
            }
            s = int(rows[i])
            *counts, amount = derive.usage(found)
            for k, count in enumerate(counts):
                if count is not None:
                    values[s, k], valid[s, k] = count, True
            if amount is not None:
                cost[s], valid[s, _T] = amount, True
        self._output_usage(rows[(win[:, :_T] < 0).all(axis=1) & (win[:, _T + 1] < 0)], values, valid)
        valid &= ~self._non_leaf(llm)[:, None]
        valid[:, _T] &= np.isfinite(cost)  # a NaN or infinite cost reported is no cost (priced instead)
        out = {name: ints(values[:, k], valid[:, k]) for k, name in enumerate(_TOKEN_COLUMNS)}
        out["cost_usd"] = floats(cost, valid[:, _T])
        # A cost the span carries is the reported one; the cost processor prices the others.
        out["cost_source"] = pc.if_else(pa.array(valid[:, _T]), "reported", pa.scalar(None, pa.string()))
        return out

    def _output_usage(self, rows: np.ndarray, values: np.ndarray, valid: np.ndarray) -> None:
        """Tokens of the ``rows`` (LLM spans with no token attribute and no usage object) from the
        usage of a raw provider response in their output (``derive.output_usage``), once per
        distinct output."""
        output = self.r.vids(("sig.output_other",))[rows, 0]
        rows, output = rows[output >= 0], output[output >= 0]
        if not rows.size:
            return
        distinct, group = np.unique(output, return_inverse=True)
        counts = [derive.output_usage(self.r.value(v)) for v in distinct.tolist()]
        for k in range(_T):
            column = [None if c is None else c[k] for c in counts]
            found = np.array([x is not None for x in column], bool)[group]
            values[rows[found], k] = np.array([x or 0 for x in column], np.int64)[group][found]
            valid[rows[found], k] = True

    def _non_leaf(self, llm: np.ndarray) -> np.ndarray:
        """LLM spans with an LLM child in this batch (same trace): their usage is the child's.

        Frameworks often wrap the provider call in a second "chat" span that repeats its usage;
        counting both would double the spend, so only the innermost LLM span keeps the numbers.
        A child that arrives in a later batch cannot be seen, so such a parent keeps its numbers.
        """
        rows = np.flatnonzero(llm)
        out = np.zeros(llm.shape[0], bool)
        out[rows] = has_child(self.d.buf, self.d.spans, rows)
        return out

    def _tenant(self) -> pa.Array:
        """The ingest token's tenant, else the mapped attribute (span's, then resource's), else
        ``default``; sanitised (``settings.tenant``)."""
        tenant = self.settings.tenant
        tenants, code = self.r.per_value("tenant", lambda v: tenant(as_str(v)), tenant(None))
        tokens = self.d.token_tenants
        if any(t is not None for t in tokens):
            by_request = np.array(
                [-1 if t is None else len(tenants) + i for i, t in enumerate(tokens)], np.int64
            )
            tenants += [tenant(t) for t in tokens]
            by_token = by_request[self.d.spans[:, S_REQ]]
            code = np.where(by_token >= 0, by_token, code)
        return choose(tenants, code)
