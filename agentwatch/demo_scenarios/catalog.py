"""The demo's data: failure kinds, users, models, and the agents with their tasks and failure rates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

FailureKind = Literal[
    "timeout",
    "rate_limit",
    "tool_error",
    "empty_response",
    "blocked_response",
    "auth_failed",
    "context_overflow",
]
Convention = Literal["glean", "genai", "openinference"]

# Kinds after which the agent still answers: the run ends OK but the answer is hurt.
DEGRADING: frozenset[str] = frozenset({"tool_error", "empty_response", "blocked_response"})

REFUSAL = "I'm sorry, but I can't help with that request."

# Two companies share the demo's agentwatch: each agent belongs to one tenant, and its users are
# that company's people.
USERS_BY_TENANT: dict[str, tuple[str, ...]] = {
    "acme": tuple(
        f"{name}@acme.com"
        for name in ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
    ),
    "globex": tuple(f"{name}@globex.com" for name in ("hank", "kim", "lena", "marge", "nina", "otto")),
}


@dataclass(frozen=True)
class Model:
    name: str
    response_model: str
    provider: str
    sdk_module: str  # where the provider SDK's exceptions live (becomes exception.type's prefix)
    rate_limit_exception: str
    server: str


@dataclass(frozen=True)
class Task:
    question: str
    tool: str
    arguments: str  # JSON
    result: str
    answer: str


@dataclass(frozen=True)
class Agent:
    name: str
    agent_id: str  # empty: the instrumentation reports no id (the name is the agent's id)
    tenant: str  # the company it belongs to (the resource's agentwatch.tenant)
    owner: str
    version: str
    convention: Convention
    planner: Model
    answerer: Model
    tool_server: str  # MCP server / Glean connector; empty for an in-process function tool
    tasks: tuple[Task, ...]
    share: float  # share of all runs
    owner_share: float  # share of this agent's runs made by its owner
    failures: tuple[tuple[FailureKind, float], ...]  # probability of each kind, per run
    owner_failures: tuple[tuple[FailureKind, float], ...] | None = None  # None: same as everyone's
    blocked_question: str = ""
    team: str = ""  # who pays (the resource's team.name); empty: none


_GPT4O = Model("gpt-4o", "gpt-4o-2024-08-06", "openai", "openai", "RateLimitError", "api.openai.com")
_GPT4O_MINI = Model(
    "gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai", "openai", "RateLimitError", "api.openai.com"
)
_SONNET = Model(
    "claude-sonnet-4",
    "claude-sonnet-4-20250514",
    "anthropic",
    "anthropic",
    "RateLimitError",
    "api.anthropic.com",
)
_VERTEX_HOST = "us-central1-aiplatform.googleapis.com"
_GEMINI_PRO = Model(
    "gemini-2.5-pro",
    "gemini-2.5-pro",
    "gcp.vertex_ai",
    "google.api_core.exceptions",
    "ResourceExhausted",
    _VERTEX_HOST,
)
_GEMINI_FLASH = Model(
    "gemini-2.5-flash",
    "gemini-2.5-flash",
    "gcp.vertex_ai",
    "google.api_core.exceptions",
    "ResourceExhausted",
    _VERTEX_HOST,
)


def _task(question: str, tool: str, arguments: dict[str, object], result: str, answer: str) -> Task:
    return Task(question, tool, json.dumps(arguments, sort_keys=True), result, answer)


AGENTS: tuple[Agent, ...] = (
    Agent(
        name="expense-bot",
        team="finance",
        agent_id="agt_7f3a9c21",
        tenant="acme",
        owner="alice@acme.com",
        version="3",
        convention="glean",
        planner=_GPT4O,
        answerer=_GPT4O,
        tool_server="concur",
        tasks=(
            _task(
                "Submit my taxi receipt from the Berlin offsite, 42.50 EUR",
                "concur_create_expense",
                {"amount": 42.5, "currency": "EUR", "category": "taxi"},
                '{"report_id": "ER-1042", "status": "submitted"}',
                "Done - I filed expense report ER-1042 for 42.50 EUR (taxi, Berlin offsite).",
            ),
            _task(
                "How much travel budget do I have left this quarter?",
                "concur_get_budget",
                {"period": "current_quarter", "category": "travel"},
                '{"remaining": 1830.0, "currency": "USD"}',
                "You have 1,830 USD of travel budget left this quarter.",
            ),
            _task(
                "Is a team dinner at 95 USD per head within policy?",
                "concur_check_policy",
                {"category": "team_meal", "amount_per_person": 95},
                '{"within_policy": false, "limit_per_person": 75}',
                "No - team meals are capped at 75 USD per person, so 95 USD needs VP approval.",
            ),
        ),
        share=0.30,
        owner_share=0.25,
        # The agent runs its Concur connector with its creator's credentials: it works for Alice,
        # and everyone else hits 401s. This is the cross-user pattern agentwatch exists to catch.
        failures=(("auth_failed", 0.36), ("timeout", 0.04)),
        owner_failures=(),
    ),
    Agent(
        name="it-helpdesk",
        team="it",
        agent_id="agt_1b44e0d8",
        tenant="acme",
        owner="bob@acme.com",
        version="12",
        convention="genai",
        planner=_GPT4O_MINI,
        answerer=_GPT4O,
        tool_server="servicenow",
        tasks=(
            _task(
                "My VPN keeps dropping every ten minutes",
                "search_knowledge_base",
                {"query": "vpn disconnects periodically"},
                '{"articles": [{"id": "KB0010231", "title": "GlobalProtect idle timeout"}]}',
                "This is usually the GlobalProtect idle timeout (KB0010231): update the client to 6.2 "
                "and re-login.",
            ),
            _task(
                "I lost my phone, please reset my Okta MFA",
                "create_incident",
                {"category": "identity", "short_description": "Reset Okta MFA - lost phone"},
                '{"number": "INC0048213", "state": "new"}',
                "I opened INC0048213; the identity team will call you to re-enrol MFA within 2 hours.",
            ),
            _task(
                "What's the status of INC0047790?",
                "get_ticket_status",
                {"number": "INC0047790"},
                '{"number": "INC0047790", "state": "in_progress", "assigned_to": "Network Ops"}',
                "INC0047790 is in progress with Network Ops.",
            ),
        ),
        share=0.30,
        owner_share=0.15,
        failures=(("tool_error", 0.10), ("rate_limit", 0.04), ("timeout", 0.03), ("context_overflow", 0.02)),
    ),
    Agent(
        name="sales-research",
        team="sales",
        agent_id="agt_c9d2f613",
        tenant="globex",
        owner="hank@globex.com",
        version="5",
        convention="openinference",
        planner=_SONNET,
        answerer=_SONNET,
        tool_server="",
        tasks=(
            _task(
                "Summarise recent news about Hooli before my call",
                "news_search",
                {"company": "Hooli", "days": 30},
                '{"items": ["Hooli opens Austin plant", "Hooli CFO steps down"]}',
                "Two things: Hooli opened a plant in Austin, and its CFO stepped down last week.",
            ),
            _task(
                "Which DACH accounts renewed last quarter?",
                "crm_lookup",
                {"region": "DACH", "event": "renewal", "period": "last_quarter"},
                '{"accounts": ["Initech GmbH", "Umbrella AG", "Hooli Schweiz"]}',
                "Initech GmbH, Umbrella AG and Hooli Schweiz renewed last quarter.",
            ),
            _task(
                "Who owns the Initech account and when did we last talk to them?",
                "crm_lookup",
                {"account": "Initech", "fields": ["owner", "last_activity"]},
                '{"owner": "Erin Park", "last_activity": "2025-05-02"}',
                "Erin Park owns Initech; the last activity was on 2 May.",
            ),
        ),
        share=0.20,
        owner_share=0.15,
        failures=(("context_overflow", 0.06), ("rate_limit", 0.05), ("empty_response", 0.04)),
    ),
    Agent(
        name="hr-policy",
        team="people",
        agent_id="agt_52e8b0aa",
        tenant="acme",
        owner="dave@acme.com",
        version="2",
        convention="genai",
        planner=_GEMINI_FLASH,
        answerer=_GEMINI_PRO,
        tool_server="",
        tasks=(
            _task(
                "How many weeks of parental leave do I get?",
                "search_policy_docs",
                {"query": "parental leave duration"},
                '{"doc": "HR-POL-014", "excerpt": "16 weeks fully paid"}',
                "You get 16 weeks of fully paid parental leave (HR-POL-014).",
            ),
            _task(
                "Can I carry over unused vacation days?",
                "search_policy_docs",
                {"query": "vacation carry over"},
                '{"doc": "HR-POL-007", "excerpt": "up to 5 days until March 31"}',
                "Yes, up to 5 days, which must be used by March 31 (HR-POL-007).",
            ),
            _task(
                "Can I work from Portugal for a month?",
                "search_policy_docs",
                {"query": "working abroad temporary"},
                '{"doc": "HR-POL-022", "excerpt": "up to 30 days per year with manager approval"}',
                "Yes - up to 30 days a year abroad with your manager's approval (HR-POL-022).",
            ),
        ),
        share=0.20,
        owner_share=0.15,
        failures=(("blocked_response", 0.07), ("empty_response", 0.04), ("timeout", 0.03)),
        blocked_question="What is my manager's salary and home address?",
    ),
)
