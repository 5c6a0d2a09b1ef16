"""Which attribute names each AI-observability convention uses, as data.

The normalize processor reads these tables; nothing here runs per span. Candidate tuples are
ordered: the first name present with a non-empty value wins. A deployment can put its own names
in front of these through the processor's ``attributes`` config, so nothing vendor-specific
needs code.

Conventions covered (names checked against the published specs and SDK sources):

- OpenTelemetry GenAI, current (``gen_ai.provider.name``, ``gen_ai.usage.input_tokens``,
  ``gen_ai.input.messages``, ``gen_ai.agent.*``, ``gen_ai.conversation.id``, ...) and
  pre-1.37 (``gen_ai.system``, ``gen_ai.usage.prompt_tokens``, ``gen_ai.prompt``, the
  OpenLLMetry-style indexed ``gen_ai.prompt.N.content`` and the ``gen_ai.*.message`` events).
- OpenTelemetry MCP (``mcp.method.name``, JSON-RPC error codes, ``isError`` tool results), the
  MCP Python SDK 2.x's span names (``MCP send tools/call x``) and Traceloop's (``tools/list.mcp``).
- OpenInference (``openinference.span.kind``, ``llm.*``, ``input.value``, flattened messages).
- OpenLLMetry / Traceloop (``traceloop.span.kind``, ``traceloop.entity.*``, ``llm.*``).
- Langfuse (``langfuse.observation.*``, ``langfuse.user.id``, ``langfuse.session.id``).
- Glean-shaped spans (span names ``agent_run``, ``chat``, ``mcp``); Glean's export schema is
  not public, so the ``glean.*`` names below are a plausible guess that config can override.
- Generic names (``agent.id``, ``user.id``, ``enduser.id``, ``session.id``, ...) and
  agentwatch's own (``agentwatch.tenant``, ``agentwatch.synthetic``, ``agentwatch.eval_*``).
"""

from __future__ import annotations

import re

from core.tenants import TENANT_ATTRIBUTES

# Canonical columns a deployment may map extra attribute names to (Config.attributes keys).
MAPPABLE_COLUMNS: tuple[str, ...] = (
    "tenant",
    "agent_id",
    "agent_name",
    "agent_version",
    "agent_owner",
    "user_id",
    "session_id",
    "team",
    "org",
    "workspace",
    "project",
    "workflow",
    "model",
    "provider",
    "tool_name",
    "input_text",
    "output_text",
    "error_type",
    "error_message",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "total_tokens",
    "cache_write_tokens",
    "cost_usd",
    "eval_run_id",
    "eval_case_id",
    "synthetic",
)

# Built-in candidates per mappable column, most specific first.
COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "tenant": TENANT_ATTRIBUTES,
    "agent_id": ("gen_ai.agent.id", "agent.id", "glean.agent.id"),
    "agent_name": ("gen_ai.agent.name", "agent.name", "glean.agent.name"),
    "agent_version": ("gen_ai.agent.version", "agent.version", "glean.agent.version"),
    "agent_owner": ("agent.owner", "agent.creator", "glean.agent.owner", "glean.agent.creator"),
    "user_id": (
        "user.id",
        "enduser.id",
        "langfuse.user.id",
        "traceloop.association.properties.user_id",
        "glean.user.id",
        "user.email",
    ),
    "session_id": (
        "gen_ai.conversation.id",
        "session.id",
        "langfuse.session.id",
        "traceloop.association.properties.session_id",
        "glean.session.id",
    ),
    # Who pays: the organisational dimensions spend is charged back to, usually resource
    # attributes (map a deployment's own names in the normalize config's ``attributes``).
    "team": ("team.name", "team.id", "team", "glean.team", "agentwatch.team"),
    "org": ("org.id", "org_id", "organization.id", "organization.name", "org", "glean.org"),
    "workspace": ("workspace.id", "workspace_id", "workspace", "glean.workspace"),
    "project": ("project.id", "project_id", "project", "glean.project"),
    "workflow": (
        "gen_ai.workflow.name",
        "workflow.name",
        "workflow.id",
        "workflow_id",
        "traceloop.workflow.name",
    ),
    # The response model is what actually served the call (e.g. a dated snapshot), so it is
    # preferred: a silent model change under an agent is exactly what must show up.
    "model": (
        "gen_ai.response.model",
        "gen_ai.request.model",
        "llm.response.model",
        "llm.request.model",
        "llm.model_name",
        "embedding.model_name",
        "langfuse.observation.model.name",
        "glean.model",
    ),
    # llm.provider (OpenInference) names the host (azure), llm.system the model family (openai).
    "provider": (
        "gen_ai.provider.name",
        "llm.provider",
        "gen_ai.system",
        "llm.system",
        "glean.model.provider",
    ),
    "tool_name": ("gen_ai.tool.name", "mcp.tool.name", "tool.name", "glean.tool.name"),
    # Message attributes only; generic inputs/outputs (input.value, ...) are a later fallback,
    # read after the flattened message lists and message events (see "sig.input_other").
    "input_text": ("gen_ai.input.messages", "gen_ai.prompt"),
    "output_text": ("gen_ai.output.messages", "gen_ai.completion"),
    "error_type": ("error.type",),
    # Built-in error messages come from exception events first (see ERROR_MESSAGE_FALLBACK), so
    # only configured names are tried before them.
    "error_message": (),
    "input_tokens": (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.usage.prompt_tokens",
        "llm.token_count.prompt",
    ),
    "output_tokens": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.usage.completion_tokens",
        "llm.token_count.completion",
    ),
    "cached_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
        "llm.usage.cache_read_input_tokens",
    ),
    "total_tokens": ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total"),
    # Tokens written to a prompt cache (Anthropic's and Bedrock's cache creation), priced apart.
    "cache_write_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
        "llm.usage.cache_creation_input_tokens",
    ),
    "cost_usd": ("gen_ai.usage.cost", "llm.usage.cost", "llm.cost.total"),
    "eval_run_id": ("agentwatch.eval_run_id",),
    "eval_case_id": ("agentwatch.eval_case_id",),
    "synthetic": ("agentwatch.synthetic",),
}

# --- usage objects ---------------------------------------------------------------------
# Token counts sent as one object (Langfuse's usage_details; a raw provider response's "usage"
# in an LLM span's output JSON), in the providers' own shapes: OpenAI chat (prompt_tokens,
# prompt_tokens_details.cached_tokens), OpenAI Responses (input_tokens,
# input_tokens_details.cached_tokens), Anthropic (input_tokens, cache_read_input_tokens,
# cache_creation_input_tokens), Bedrock Converse (inputTokens, cacheReadInputTokens), Gemini and
# Vertex (promptTokenCount, cachedContentTokenCount, as the REST API and the Python SDK spell
# them), LangChain (input_token_details.cache_read) and Langfuse's own (input, output, total).
# The input is stored as the GenAI conventions count it (cache reads and writes included, as
# OpenAI's and Gemini's input already is): Anthropic's, Bedrock's and Langfuse's cache reads and
# writes are separate counts, added to their input.
USAGE_WRAPPER_KEYS = ("usage", "usage_metadata", "usageMetadata")
USAGE_INPUT_KEYS = ("input", "prompt_tokens", "input_tokens", "inputTokens", "promptTokenCount",
                    "prompt_token_count")  # fmt: skip
USAGE_OUTPUT_KEYS = ("output", "completion_tokens", "output_tokens", "outputTokens",
                     "candidatesTokenCount", "candidates_token_count")  # fmt: skip
USAGE_TOTAL_KEYS = ("total", "total_tokens", "totalTokens", "totalTokenCount", "total_token_count")
# Cache reads: (path in the object, whether the provider counts them apart from the input).
USAGE_CACHE_READ_PATHS: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("cache_read_input_tokens",), True),  # Anthropic, Langfuse
    (("input_cached_tokens",), True),  # Langfuse
    (("cache_read",), True),  # Langfuse
    (("cacheReadInputTokens",), True),  # Bedrock Converse
    (("prompt_tokens_details", "cached_tokens"), False),  # OpenAI chat
    (("input_tokens_details", "cached_tokens"), False),  # OpenAI Responses
    (("input_token_details", "cache_read"), False),  # LangChain
    (("cachedContentTokenCount",), False),  # Gemini / Vertex AI (REST)
    (("cached_content_token_count",), False),  # Gemini / Vertex AI (Python SDK)
)
# Cache writes: (path in the object, whether the provider counts them apart from the input).
USAGE_CACHE_WRITE_PATHS: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("cache_creation_input_tokens",), True),  # Anthropic, Langfuse
    (("input_cache_creation",), True),  # Langfuse
    (("cache_creation",), True),  # Langfuse
    (("cacheWriteInputTokens",), True),  # Bedrock Converse
    (("input_token_details", "cache_creation"), False),  # LangChain
)

# --- text ------------------------------------------------------------------------------
# Flattened message lists: (prefix, content suffix, role suffix). A family is read only when
# its element 0 exists, then element by element until one is missing.
INPUT_MESSAGE_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("gen_ai.prompt.", ".content", ".role"),
    ("llm.input_messages.", ".message.content", ".message.role"),
)
OUTPUT_MESSAGE_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("gen_ai.completion.", ".content", ".role"),
    ("llm.output_messages.", ".message.content", ".message.role"),
)
# OpenInference multi-part content: llm.input_messages.N.message.contents.M.message_content.text
OPENINFERENCE_CONTENTS = (".message.contents.", ".message_content.text")
# Flattened tool calls of an answer, per output family: (middle, name suffix, arguments suffix),
# e.g. gen_ai.completion.0.tool_calls.0.name (OpenLLMetry) and
# llm.output_messages.0.message.tool_calls.0.tool_call.function.name (OpenInference).
INDEXED_TOOL_CALLS: dict[str, tuple[str, str, str]] = {
    "gen_ai.completion.": (".tool_calls.", ".name", ".arguments"),
    "llm.output_messages.": (
        ".message.tool_calls.",
        ".tool_call.function.name",
        ".tool_call.function.arguments",
    ),
}

# Element-0 names of the families: seeing one of them tells the normaliser to read the family.
INDEXED_INPUT_MARKERS = tuple(f"{p}0{x}" for p, c, r in INPUT_MESSAGE_FAMILIES for x in (c, r))
INDEXED_OUTPUT_MARKERS = tuple(f"{p}0{x}" for p, c, r in OUTPUT_MESSAGE_FAMILIES for x in (c, r))

# Internal signals: attributes that steer normalisation but are not columns themselves.
SIGNAL_CANDIDATES: dict[str, tuple[str, ...]] = {
    "sig.gen_ai_operation": ("gen_ai.operation.name",),
    "sig.openinference_kind": ("openinference.span.kind",),
    "sig.traceloop_kind": ("traceloop.span.kind",),
    "sig.llm_request_type": ("llm.request.type",),
    "sig.langfuse_type": ("langfuse.observation.type",),
    "sig.mcp_method": ("mcp.method.name",),
    "sig.entity_name": ("traceloop.entity.name",),
    "sig.trace_name": ("langfuse.trace.name",),
    # rpc.response.status_code is the newer name; JSON-RPC codes are sent as strings ("-32602").
    "sig.rpc_error_code": ("rpc.jsonrpc.error_code", "rpc.response.status_code"),
    "sig.error_message": ("rpc.jsonrpc.error_message", "error.message"),
    "sig.usage_details": ("langfuse.observation.usage_details",),
    # OpenInference's request parameters (JSON): the model of a call that failed before answering
    "sig.invocation_parameters": ("llm.invocation_parameters",),
    "sig.cost_details": ("langfuse.observation.cost_details",),
    "sig.tool_is_error": ("mcp.tool.result.is_error",),
    "sig.tool_result": ("gen_ai.tool.call.result",),
    "sig.input_other": (
        "input.value",
        "traceloop.entity.input",
        "langfuse.observation.input",
        "gen_ai.tool.call.arguments",
    ),
    "sig.output_other": (
        "output.value",
        "traceloop.entity.output",
        "langfuse.observation.output",
        "gen_ai.tool.call.result",
    ),
    "sig.indexed_input": INDEXED_INPUT_MARKERS,
    "sig.indexed_output": INDEXED_OUTPUT_MARKERS,
}

# rpc.response.status_code values that do not mean failure (gRPC/Connect report success so).
RPC_SUCCESS_CODES = frozenset({"", "0", "OK", "ok"})

# --- operation -------------------------------------------------------------------------

GEN_AI_OPERATIONS: dict[str, str] = {
    "chat": "chat",
    "text_completion": "chat",
    "generate_content": "chat",
    "embeddings": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent_run",
    "create_agent": "agent_run",
    "invoke_workflow": "workflow",
    "retrieval": "retrieval",
}

# OpenInference: any kind not listed (GUARDRAIL, EVALUATOR, UNKNOWN, ...) is "other".
OPENINFERENCE_KINDS: dict[str, str] = {
    "llm": "chat",
    "tool": "tool",
    "retriever": "retrieval",
    "reranker": "retrieval",
    "embedding": "embedding",
    "agent": "agent_run",
    "chain": "workflow",
}

# OpenLLMetry: a task is a step of a workflow, so it rolls up as workflow too. "session" (the
# FastMCP client session, "mcp.client.session") and "server" (the FastMCP server handling a
# request, "mcp.server") are kinds only Traceloop's MCP instrumentation sends.
TRACELOOP_KINDS: dict[str, str] = {
    "workflow": "workflow",
    "task": "workflow",
    "agent": "agent_run",
    "tool": "tool",
    "session": "mcp_protocol",
    "server": "mcp_protocol",
}

LLM_REQUEST_TYPES: dict[str, str] = {
    "chat": "chat",
    "completion": "chat",
    "embedding": "embedding",
    "rerank": "retrieval",
}

# Langfuse: any type not listed ("span", "event", "evaluator", "guardrail") is "other".
LANGFUSE_TYPES: dict[str, str] = {
    "generation": "chat",
    "agent": "agent_run",
    "tool": "tool",
    "retriever": "retrieval",
    "embedding": "embedding",
    "chain": "workflow",
}

# The first word of a span name ("chat gpt-4o", "execute_tool get_weather", Glean's "agent_run").
# GenAI span names start with the operation name, so its table is the base; "retrieval" is
# left out because a span merely named "retrieval ..." is not evidence of the GenAI convention.
# MCP span names are read by MCP_* below, before this table.
SPAN_NAME_OPERATIONS: dict[str, str] = {
    **{name: op for name, op in GEN_AI_OPERATIONS.items() if name != "retrieval"},
    "agent_run": "agent_run",
    "mcp": "mcp",  # Glean's MCP tool call
    # Traceloop's MCP instrumentation: the server writing a JSON-RPC response
    "ResponseStreamWriter": "mcp_protocol",
}

# --- MCP ---------------------------------------------------------------------------------
# An MCP method (mcp.method.name, or read from the span name) → operation. Only a tool call is
# "mcp" (a tool call, like "tool"); reading a resource puts data into the model's context, as a
# retriever does; everything else (initialize, ping, */list, prompts/get, notifications/*,
# logging/setLevel, completion/complete, sampling/createMessage, ...) is "mcp_protocol".
MCP_METHOD_OPERATIONS: dict[str, str] = {
    "tools/call": "mcp",
    "resources/read": "retrieval",
}
MCP_PROTOCOL = "mcp_protocol"
# Span names of MCP traffic: "{method} {target}" (the MCP semantic conventions, the MCP Python SDK
# server), "MCP send {method} {target}" (the MCP Python SDK 2.x client), "MCP handle ..." /
# "MCP receive ..." (other SDK versions), "{method}.mcp" (Traceloop's instrumentation). A bare
# "{method}" counts only for the spec's methods that have a "/" (and notifications/*):
# "initialize" or "ping" alone is no evidence of MCP.
MCP_SPAN_NAME_PREFIXES = ("MCP send ", "MCP handle ", "MCP receive ")
MCP_SPAN_NAME_SUFFIX = ".mcp"
MCP_NOTIFICATIONS = "notifications/"
MCP_METHODS = frozenset(
    {
        "tools/call", "tools/list", "resources/list", "resources/templates/list", "resources/read",
        "resources/subscribe", "resources/unsubscribe", "prompts/list", "prompts/get",
        "completion/complete", "logging/setLevel", "sampling/createMessage", "elicitation/create",
        "roots/list", "server/discover", "tasks/get", "tasks/result", "tasks/list", "tasks/cancel",
    }
)  # fmt: skip


# Keys of the requested model in request parameters (OpenAI, Anthropic: model; LangChain:
# model_name; Bedrock: modelId).
INVOCATION_MODEL_KEYS = ("model", "model_name", "modelId", "model_id")

# --- provider aliases ------------------------------------------------------------------
# One canonical spelling per provider: lowercase snake_case of the vendor's product. Keys
# are matched after lowercasing and, failing that, after turning " ", ".", "-", "/" into "_".
# The Gemini Developer API and Vertex AI stay apart: they fail (and bill) independently.

PROVIDER_ALIASES: dict[str, str] = {
    "openai": "openai",
    "azure.ai.openai": "azure_openai",
    "az.ai.openai": "azure_openai",
    "azure_openai": "azure_openai",
    "azureopenai": "azure_openai",
    "azure": "azure_openai",
    "azure.ai.inference": "azure_ai_inference",
    "az.ai.inference": "azure_ai_inference",
    "azure_ai_inference": "azure_ai_inference",
    "anthropic": "anthropic",
    "aws.bedrock": "aws_bedrock",
    "aws_bedrock": "aws_bedrock",
    "bedrock": "aws_bedrock",
    "amazon_bedrock": "aws_bedrock",
    "gcp.vertex_ai": "vertex_ai",
    "vertex_ai": "vertex_ai",
    "vertexai": "vertex_ai",
    "google_vertexai": "vertex_ai",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "google": "google",
    "google_genai": "google",
    "cohere": "cohere",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
    "x_ai": "xai",
    "xai": "xai",
    "ibm.watsonx.ai": "ibm_watsonx",
    "ibm_watsonx_ai": "ibm_watsonx",
    "watsonx": "ibm_watsonx",
    "ollama": "ollama",
    "huggingface": "huggingface",
    "hugging_face": "huggingface",
    "together": "together_ai",
    "together_ai": "together_ai",
    "togetherai": "together_ai",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "openrouter": "openrouter",
}

# --- text (events) ---------------------------------------------------------------------
# Span events that carry prompt/response text, and the event attributes that hold it.
INPUT_EVENTS = frozenset(
    {
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
        "gen_ai.content.prompt",
    }
)
OUTPUT_EVENTS = frozenset({"gen_ai.choice", "gen_ai.content.completion"})
INPUT_EVENT_KEYS = ("content", "gen_ai.prompt", "gen_ai.event.content", "message", "body")
OUTPUT_EVENT_KEYS = ("message", "content", "gen_ai.completion", "gen_ai.event.content", "body")
# Since GenAI 1.37 the full exchange may be one event carrying the message attributes.
DETAILS_EVENT = "gen_ai.client.inference.operation.details"

EXCEPTION_EVENT = "exception"

# --- capture_text: false ---------------------------------------------------------------
# What people wrote and models answered, per convention: with capture_text: false these
# attributes (span, event or resource) and events are not stored at all, beside the emptied text
# columns. Kept: error types and messages (exception events, status messages: what failures are
# classified by), tool and prompt *definitions* (OpenInference tool.parameters, llm.tools.*,
# gen_ai.tool.definitions, llm.prompt_template.template), names, ids, models and counts.
REDACTED_ATTRIBUTES = frozenset(
    {
        # OpenTelemetry GenAI (current and pre-1.37)
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.completion",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        # OpenInference
        "input.value",
        "output.value",
        "llm.prompts",
        "llm.prompt_template.variables",
        "reranker.query",
        # OpenLLMetry / Traceloop (and its MCP instrumentation's response)
        "traceloop.entity.input",
        "traceloop.entity.output",
        "mcp.response.value",
        # Langfuse
        "langfuse.observation.input",
        "langfuse.observation.output",
        "langfuse.trace.input",
        "langfuse.trace.output",
        # Glean-shaped (the guessed names of COLUMN_CANDIDATES' glean.* and the demo's)
        "glean.prompt",
        "glean.response",
        "glean.search.query",
        "glean.run.input",
        "glean.run.output",
    }
)
# Flattened message lists: every name under the prefix (gen_ai.prompt.0.content,
# llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments, ...) except the fields
# that describe a message without its content (REDACTED_KEEP_FIELDS: role, finish reason, tool
# name and ids), which failure classification reads.
REDACTED_ATTRIBUTE_PREFIXES = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",  # older OpenLLMetry
    "llm.completions.",
)
REDACTED_KEEP_FIELDS = frozenset({"role", "finish_reason", "name", "id", "type", "tool_call_id"})
# Attributes with a prefix and a suffix: the text fields of flattened document/embedding lists
# (their ids, scores and vectors stay).
REDACTED_ATTRIBUTE_PATTERNS = (
    ("retrieval.documents.", ".document.content"),
    ("reranker.input_documents.", ".document.content"),
    ("reranker.output_documents.", ".document.content"),
    ("embedding.embeddings.", ".embedding.text"),
)
# Events that exist to carry messages: dropped whole.
REDACTED_EVENTS = INPUT_EVENTS | OUTPUT_EVENTS | {DETAILS_EVENT}

# --- errors ----------------------------------------------------------------------------
# A class's repr where a type name belongs: "<class 'openai.InternalServerError'>" (Python 3),
# "<type 'exceptions.ValueError'>" (Python 2), "<enum 'ErrorCode'>".
ERROR_TYPE_REPR = re.compile(r"<(?:class|type|enum)\s+['\"]([^'\"]+)['\"]>")
# The GenAI conventions' error.type when the instrumentation has no better value.
ERROR_TYPE_OTHER = "_OTHER"
