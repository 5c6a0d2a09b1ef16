"""The dashboard's JSON API on the report's hand-computed fixture (tests/helpers/health_fixture.py,
tenant ``default``) plus one run of tenant ``globex``; and who may read what.

The app is the one ``serve`` mounts (``dashboard.app.routes``), driven through Starlette's test
client; the browser test drives it in a real server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from starlette.applications import Starlette
from starlette.testclient import TestClient

from core.agents import AgentConfig
from core.component import ExporterSettings
from core.model import OtlpRecord
from dashboard.access import Access, ReadToken
from dashboard.app import Dashboard, routes
from dashboard.reader import Reader
from exporters import parquet
from processors.normalize.logs import log_rows
from spend.budgets import Budget
from tests.helpers.health_fixture import AGENTS_CONFIG, store_fixture, trace_hex
from tests.helpers.store import store_spans

WINDOW = "from=2025-11-21T12:00:00Z&to=2025-11-22T12:00:00Z"
GLOBEX_TRACE = "00000000000000000000000000000999"
TOKENS = {
    "default": "default-read-token-0123",
    "globex": "globex-read-token-01234",
    "admin": "admin-read-token-012345",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("dashboard")
    config = workdir / "agentwatch.yaml"
    config.write_text(f"storage:\n  data_dir: {workdir / 'data'}\n{AGENTS_CONFIG}")
    assert store_fixture(config) == 14
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"agentwatch.tenant": "globex"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    begin = 1763805600 * 10**9  # 2025-11-22 10:00 UTC
    span = provider.get_tracer("t").start_span(
        "agent_run",
        start_time=begin,
        attributes={"gen_ai.agent.id": "globex-bot", "user.id": "hank@globex.com"},
    )
    span.set_status(Status(StatusCode.ERROR, "boom"))
    span.end(end_time=begin + 10**9)
    provider.shutdown()
    (stored,) = memory.get_finished_spans()
    assert stored.context is not None
    store_spans(config, [stored])
    _store_logs(workdir / "data")
    return workdir / "data"


def _store_logs(data: Path) -> None:
    """Log records of R7's trace: two of tenant default (one an agent event, at 11:40 and 11:40:02),
    and one of globex naming the same trace id, which default's trace page must not show."""
    request = ExportLogsServiceRequest()
    at = 1763811600 * 10**9  # 2025-11-22 11:40 UTC
    for tenant, offset, body, event in (("default", 2, "tool answered 503", None),
                                        ("default", 0, "", "agent.retry"), ("globex", 1, "other tenant", None)):  # fmt: skip
        rl = request.resource_logs.add()
        rl.resource.attributes.add(key="agentwatch.tenant").value.string_value = tenant
        item = rl.scope_logs.add().log_records.add(time_unix_nano=at + offset * 10**9)
        item.trace_id, item.severity_text = bytes.fromhex(trace_hex(7)), "WARN"
        if body:
            item.body.string_value = body
        if event:
            item.event_name = event
    exporter = parquet.create(parquet.Config(), ExporterSettings("parquet", data))
    exporter.consume_logs(log_rows([OtlpRecord.from_logs_request(request)]))


BUDGETS = {
    "default-hard": Budget(monthly_usd=100.0, tenant="default", hard=True),
    "globex": Budget(monthly_usd=50.0, tenant="globex"),
    "everything": Budget(monthly_usd=1000.0),
}


def client(data_dir: Path, tokens: list[ReadToken] | None = None, ingest_auth: bool = False) -> TestClient:
    access = Access(tokens or [], required=ingest_auth)
    reader = Reader(data_dir, (AgentConfig(id="expense-bot", owner="alice@acme.com"),))
    return TestClient(Starlette(routes=routes(Dashboard(reader, access, None, BUDGETS))))


@pytest.fixture(scope="module")
def api(data_dir: Path) -> Iterator[TestClient]:
    with client(data_dir) as c:
        yield c


def get(c: TestClient, path: str, status: int = 200, **headers: str) -> Any:
    response = c.get(path, headers=headers)
    assert response.status_code == status, response.text
    return response.json()


def test_overview_numbers(api: TestClient) -> None:
    d = get(api, f"/api/v1/overview?{WINDOW}&tenant=default")
    # In the window: expense-bot R1-R8 (4 failed, 1 degraded), faq-bot F1-F3 (2 failed).
    assert d["runs"] == {"now": 11, "previous": 1}  # the day before: R10, failed
    assert d["failures"] == {"now": 6, "previous": 1}
    assert d["degraded"] == {"now": 1, "previous": 0}  # R7
    assert d["spend_usd"] == {"now": None, "previous": None}  # the fixture's runs have no model calls
    assert d["success_rate"] == {"now": pytest.approx(4 / 11), "previous": 0.0}
    # Ranked by failure rate x affected users: expense-bot 0.5 x 3 (bob, carol, dave) = 1.5,
    # faq-bot 2/3 x 2 (frank, gina) = 1.33.
    ranked = [
        (a["agent"], a["failures"], a["runs"], a["affected_users"], a["score"]) for a in d["failing_agents"]
    ]
    assert ranked == [("expense-bot", 4, 8, 3, 1.5), ("faq-bot", 2, 3, 2, pytest.approx(4 / 3))]
    assert d["failing_agents"][0]["top_failure_type"] == "timeout"
    assert [(c["agent"], c["loud"], c["owner"]) for c in d["cross_user"]] == [
        ("expense-bot", True, "alice@acme.com"),  # alice's runs succeeded, others' failed
        ("faq-bot", False, "frank@acme.com"),  # frank failed too
    ]
    assert (d["open_alerts"], d["regressions"], d["incidents"]) == ([], [], 0)
    assert d["bucket_seconds"] == 3600 and len(d["latency_p95"]) == 24
    last = d["latency_p95"][-1]  # 11:00-12:00: R4-R8, 4000..8000 ms; p95 = 7800
    assert (last["start"], last["runs"], last["p95_ms"]) == ("2025-11-22T11:00:00Z", 5, pytest.approx(7800.0))


def test_agents_list_is_the_reports(api: TestClient) -> None:
    d = get(api, f"/api/v1/agents?{WINDOW}")
    rows = {(a["tenant"], a["agent"]): a for a in d["agents"]}
    assert sorted(rows) == [("default", "expense-bot"), ("default", "faq-bot"), ("globex", "globex-bot")]
    e = rows[("default", "expense-bot")]
    assert (e["runs"], e["failures"], e["degraded"], e["failure_rate"]) == (8, 4, 1, 0.5)
    assert e["latency_ms"] == {"p50": 4500.0, "p90": 7300.0, "p95": pytest.approx(7650.0), "p99": 7930.0}
    assert e["owner"] == "alice@acme.com" and e["affected_users"]["count"] == 3
    # Hourly failure rate: 10:00-11:00 R1, R2, R3 (1 failed), 11:00-12:00 R4-R8 (3 failed of 5).
    assert len(e["trend"]) == 24 and e["trend"][22:] == [pytest.approx(1 / 3), 0.6]
    assert e["trend"][:22] == [None] * 22
    assert e["cross_user"]["loud"] is True


def test_agent_page_data(api: TestClient) -> None:
    d = get(api, f"/api/v1/agents/expense-bot?{WINDOW}&tenant=default")
    assert d["agent"]["agent"] == "expense-bot" and d["agent"]["runs"] == 8
    users = [(u["user_id"], u["runs"], u["failures"], u["is_owner"]) for u in d["users"]]
    assert users == [
        ("bob@acme.com", 2, 2, False),
        ("erin@acme.com", 2, 1, False),  # R7 degraded
        ("carol@acme.com", 1, 1, False),
        ("dave@acme.com", 1, 1, False),
        ("alice@acme.com", 2, 0, True),
    ]
    types = d["failure_types_over_time"]
    assert len(types["starts"]) == 24
    series = {t: (values[22], values[23]) for t, values in types["series"].items()}
    assert series == {"timeout": (1, 2), "rate_limit": (0, 1), "tool_error": (0, 1)}
    assert [r["trace_id"] for r in d["recent_failures"]] == [trace_hex(n) for n in (7, 6, 5, 4, 3)]
    assert [(s["step"], s["spans"], s["failed"]) for s in d["steps"]] == [
        ("agent_run", 8, 4),
        ("create_ticket", 1, 1),
    ]
    # By size, then by id (md5 of type and template): the report's order.
    assert [(s["failure_type"], s["count"]) for s in d["signals"]] == [
        ("timeout", 3),
        ("tool_error", 1),
        ("rate_limit", 1),
    ]
    assert d["evals"] == {"runs": [], "baselines": {}, "events": []}


def test_trace_waterfall(api: TestClient) -> None:
    d = get(api, f"/api/v1/traces/{trace_hex(7)}")
    assert [(s["name"], s["depth"], s["offset_ms"]) for s in d["spans"]] == [
        ("agent_run", 0, 0.0),
        ("execute_tool create_ticket", 1, 1.0),
    ]
    assert d["run"]["outcome"] == "degraded" and d["run"]["failure_type"] == "tool_error"
    assert d["run"]["failing_span_id"] == d["spans"][1]["span_id"]
    assert d["duration_ms"] == 7000.0 and d["tenant"] == "default"
    assert (d["spans_total"], d["run"]["agent"]) == (2, "expense-bot")
    assert d["logs_total"] == 2  # its tenant's only
    assert [(x["time"], x["severity_text"], x["event_name"], x["body"]) for x in d["logs"]] == [
        ("2025-11-22T11:40:00Z", "WARN", "agent.retry", None),
        ("2025-11-22T11:40:02Z", "WARN", None, "tool answered 503"),
    ]
    assert get(api, f"/api/v1/traces/{'f' * 32}", 404) == {"error": "no such trace"}
    assert get(api, "/api/v1/traces/not-hex", 400) == {"error": "trace_id: must be 32 hex digits"}


def test_cases_download_is_the_cases_export(api: TestClient) -> None:
    response = api.get(f"/api/v1/agents/expense-bot/cases.jsonl?{WINDOW}&tenant=default")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="cases-expense-bot.jsonl"'
    ids = [line.split('"id":"')[1].split('"')[0] for line in response.text.splitlines()]
    assert sorted(ids) == [f"prod-{trace_hex(n)}" for n in (3, 4, 5, 6, 7)]


def test_odd_windows(api: TestClient) -> None:
    # Fractional seconds: the last, partial bucket (15 min buckets: 4 and a half second) is counted.
    odd = "from=2025-11-22T10:40:00Z&to=2025-11-22T11:40:00.5Z&tenant=default"
    assert len(get(api, f"/api/v1/agents/expense-bot?{odd}")["failure_types_over_time"]["starts"]) == 5
    assert get(api, "/api/v1/overview?from=0001-01-01T00:00:00Z&to=0001-01-02T00:00:00Z", 400) == {
        "error": "from: '0001-01-01T00:00:00Z' is outside the years 1970 to 9000"
    }


def test_cost_endpoint(api: TestClient) -> None:
    d = get(api, f"/api/v1/cost?{WINDOW}&tenant=default&by=agent")
    # The fixture's runs made no model call: every agent at $0, counted, none unknown.
    assert [(r["key"], r["count"], r["spend_usd"]) for r in d["rows"]] == [
        ("expense-bot", 8, 0.0),
        ("faq-bot", 3, 0.0),
    ]
    assert (d["total_usd"], d["cost_unknown_model"], d["bucket_seconds"], len(d["starts"])) == (
        0.0,
        [],
        3600,
        24,
    )
    assert d["series"] == {"expense-bot": [0.0] * 24, "faq-bot": [0.0] * 24}
    leaks = get(api, f"/api/v1/cost/leaks?{WINDOW}&tenant=default")["leaks"]
    # No model call, no spend: every agent with its runs, nothing wasted.
    assert [(x["agent"], x["runs"], x["spend_usd"], x["wasted_usd"], x["wasted_share"]) for x in leaks] == [
        ("expense-bot", 8, 0.0, 0.0, None),
        ("faq-bot", 3, 0.0, 0.0, None),
    ]
    assert get(api, f"/api/v1/cost?{WINDOW}&by=color", 400) == {
        "error": "by: one of tenant, agent, user, team, org, workspace, project, workflow, model, provider"
    }


def test_implicit_feedback_endpoint(api: TestClient) -> None:
    d = get(api, f"/api/v1/agents/expense-bot/implicit?{WINDOW}&tenant=default")
    # Over time, on the page's hourly buckets: R1-R3 in 10:00-11:00, R4-R8 (R7 requeried) after.
    buckets = d["implicit"].pop("buckets")
    assert len(buckets) == 24
    assert [(b["start"], b["runs"], b["requeried_runs"], b["sessions"]) for b in buckets if b["runs"]] == [
        ("2025-11-22T10:00:00Z", 3, 0, 0),
        ("2025-11-22T11:00:00Z", 5, 1, 0),
    ]
    # Every run asks the same question. erin asked again exactly 10 minutes after R7 (the window
    # holds): R7 is requeried; alice's and bob's next asks came 15 and 60 minutes later. bob
    # failed twice in a row (R3, R6): under the streak of 3. No sessions, nothing cancelled.
    assert (d["tenant"], d["agent"], d["implicit"]) == ("default", "expense-bot", {
        "runs": 8, "requeried_runs": 1, "requery_rate": 0.125, "sessions": 0, "abandoned_sessions": 0,
        "abandonment_rate": None, "cancelled_runs": 0, "users_on_failure_streaks": 0, "longest_failure_streak": 2,
    })  # fmt: skip
    assert d["fallbacks"] == {  # no run of the fixture fell back
        "runs": 8, "fell_back": 0, "activation_rate": 0.0, "reasons": {}, "success_rate_with": None,
        "success_rate_without": 0.375, "followed_advice": 0,
    }  # fmt: skip
    assert get(api, f"/api/v1/agents/nobody/implicit?{WINDOW}", 404)["error"]


def test_bad_parameters_name_the_key(api: TestClient) -> None:
    assert get(api, "/api/v1/overview?since=soon", 400)["error"].startswith("since: ")
    assert get(api, "/api/v1/overview?from=yesterday", 400) == {
        "error": "from: not an ISO 8601 time: 'yesterday'"
    }
    assert get(api, f"/api/v1/agents/nope?{WINDOW}", 404) == {
        "error": "no such agent in this window and tenant"
    }


def test_without_tokens_everything_is_open(api: TestClient) -> None:
    assert api.get("/").status_code == 200
    assert get(api, "/api/v1/tenants") == {"tenants": ["default", "globex"], "restricted": False}


def test_a_tenants_token_reads_that_tenant_only(data_dir: Path) -> None:
    tokens = [
        ReadToken(TOKENS["default"], tenant="default"),
        ReadToken(TOKENS["globex"], tenant="globex"),
        ReadToken(TOKENS["admin"], admin=True),
    ]
    with client(data_dir, tokens, ingest_auth=True) as c:
        assert c.get(f"/api/v1/agents?{WINDOW}").status_code == 401
        assert (
            c.get(
                f"/api/v1/agents?{WINDOW}", headers={"authorization": "Bearer wrong-token-000000"}
            ).status_code
            == 401
        )
        page = c.get("/agents", follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, "/login?next=%2Fagents")
        shared = c.get("/agents?since=7d", follow_redirects=False)  # the view's state survives the sign-in
        assert shared.headers["location"] == "/login?next=%2Fagents%3Fsince%3D7d"
        globex = {"authorization": f"Bearer {TOKENS['globex']}"}
        agents = get(c, f"/api/v1/agents?{WINDOW}", **globex)["agents"]
        assert [(a["tenant"], a["agent"]) for a in agents] == [("globex", "globex-bot")]
        # Another tenant's data answers as if it did not exist, by any path.
        assert get(c, f"/api/v1/agents?{WINDOW}&tenant=default", 404, **globex)["error"]
        assert get(c, f"/api/v1/agents/expense-bot?{WINDOW}", 404, **globex)["error"]
        assert get(c, f"/api/v1/traces/{trace_hex(3)}", 404, **globex) == {"error": "no such trace"}
        assert get(c, f"/api/v1/traces/{GLOBEX_TRACE}", 404, **globex) == {
            "error": "no such trace"
        }  # unknown id
        assert get(c, "/api/v1/tenants", **globex) == {"tenants": ["globex"], "restricted": True}
        assert {x["tenant"] for x in get(c, f"/api/v1/cost/leaks?{WINDOW}", **globex)["leaks"]} <= {"globex"}
        assert get(c, f"/api/v1/cost/leaks?{WINDOW}&tenant=default", 404, **globex)["error"]
        # A tenant's token reads its tenant's budgets only (a budget of every run is the admin's).
        assert [b["name"] for b in get(c, "/api/v1/budgets", **globex)["budgets"]] == ["globex"]
        overview = get(c, f"/api/v1/overview?{WINDOW}", **globex)
        assert overview["runs"]["now"] == 1 and overview["window"]["tenant"] == "globex"
        cases = c.get(f"/api/v1/agents/expense-bot/cases.jsonl?{WINDOW}&tenant=default", headers=globex)
        assert cases.status_code == 404
        admin = {"authorization": f"Bearer {TOKENS['admin']}"}
        assert len(get(c, f"/api/v1/agents?{WINDOW}", **admin)["agents"]) == 3
        assert get(c, f"/api/v1/traces/{trace_hex(3)}", **admin)["tenant"] == "default"
        states = {b["name"]: b for b in get(c, "/api/v1/budgets", **admin)["budgets"]}
        assert sorted(states) == ["default-hard", "everything", "globex"]
        assert (states["default-hard"]["hard"], states["default-hard"]["over_budget"]) == (True, False)
        # The login page sets the cookie the pages and the API then accept.
        login = c.post("/login?next=/agents", data={"token": TOKENS["default"]}, follow_redirects=False)
        assert (login.status_code, login.headers["location"]) == (303, "/agents")
        assert c.get("/agents").status_code == 200
        assert [a["agent"] for a in get(c, f"/api/v1/agents?{WINDOW}")["agents"]] == [
            "expense-bot",
            "faq-bot",
        ]
        bad = c.post("/login", data={"token": "nope"}, follow_redirects=False)
        assert bad.status_code == 401 and "not a read token" in bad.text
        # Another site cannot sign a browser in (or out) with its own token; sign-out is a POST.
        forged = c.post(
            "/login", data={"token": TOKENS["globex"]}, headers={"origin": "https://evil.example"}
        )
        assert forged.status_code == 403
        assert c.get("/logout").status_code == 405


def test_ingest_tokens_without_read_tokens_lock_everything(data_dir: Path) -> None:
    with client(data_dir, [], ingest_auth=True) as c:
        answer = c.get(f"/api/v1/agents?{WINDOW}")
        assert answer.status_code == 401
        assert answer.json()["error"].startswith(
            "ingest tokens are configured (receivers.otlp.auth) but no read token"
        )
        assert "no read token" in c.get("/login").text


def test_a_query_over_its_memory_limit_is_one_line_and_the_server_goes_on(data_dir: Path) -> None:
    tiny = Reader(data_dir, memory_mib=1)
    with TestClient(Starlette(routes=routes(Dashboard(tiny, Access([], required=False), None)))) as c:
        answer = c.get(f"/api/v1/operations?{WINDOW}")
        assert answer.status_code == 503
        assert answer.json()["error"].startswith("the query could not finish (Out of Memory Error")
        assert answer.json()["error"].endswith("try a shorter range")
        tiny.memory_mib = 512
        assert c.get(f"/api/v1/operations?{WINDOW}").status_code == 200


def test_a_trace_id_two_tenants_share_shows_one_tenants_trace(tmp_path: Path) -> None:
    from tests.helpers.span_rows import export, row

    export(
        tmp_path,
        [
            row("c", "1", None, "agent_run", 0, 1000, tenant="globex", agent_id="g-bot"),
            row("c", "1", None, "agent_run", 0, 2000, tenant="acme", agent_id="a-bot"),
            row("c", "2", "1", "tool", 10, 500, tenant="acme", tool_name="search"),
        ],
    )
    trace = "c" * 32
    with client(tmp_path) as c:
        first = get(c, f"/api/v1/traces/{trace}")  # no read tokens: the first tenant's by name
        assert (first["tenant"], first["spans_total"], first["run"]["agent"], first["other_tenants"]) == (
            "acme", 2, "a-bot", ["globex"]
        )  # fmt: skip
        other = get(c, f"/api/v1/traces/{trace}?tenant=globex")
        assert (other["tenant"], other["spans_total"], other["run"]["agent"], other["other_tenants"]) == (
            "globex", 1, "g-bot", []
        )  # fmt: skip
        assert get(c, f"/api/v1/traces/{trace}?tenant=initech", 404) == {"error": "no such trace"}
    # A tenant's token never reaches another tenant's trace by asking for it.
    with client(tmp_path, [ReadToken("g-token-0123456789abcdef", tenant="globex")]) as c:
        auth = {"authorization": "Bearer g-token-0123456789abcdef"}
        assert get(c, f"/api/v1/traces/{trace}?tenant=acme", 404, **auth) == {"error": "no such trace"}
        assert get(c, f"/api/v1/traces/{trace}", **auth)["tenant"] == "globex"


def test_new_files_catalog_is_bound_before_a_view_asks(tmp_path: Path) -> None:
    """A reader in use binds the catalog of each new version of the data files on its own
    thread, so the next view reads it without binding; a reader that is gone stops it."""
    import gc
    import time

    from tests.helpers.span_rows import export, row

    export(tmp_path, [row("a", "1", None, "agent_run", 0, 1000, agent_id="bot")])
    reader = Reader(tmp_path)
    with reader.connection() as con:
        assert con.execute("SELECT count(*) FROM spans").fetchall() == [(1,)]
    first = reader.version()
    export(tmp_path, [row("b", "1", None, "agent_run", 0, 1000, agent_id="bot")])
    assert reader.version() != first
    deadline = time.monotonic() + 10
    while reader._catalog is not None and reader._catalog.version != reader.version():
        assert time.monotonic() < deadline, "the new files' catalog was not bound"
        time.sleep(0.05)
    bound = reader._catalog
    with reader.connection() as con:
        assert reader._catalog is bound  # no binding on the view's path
        assert con.execute("SELECT count(*) FROM spans").fetchall() == [(2,)]
    warmer = reader._warmer
    assert warmer is not None and warmer.is_alive()
    del reader, bound, con
    gc.collect()
    warmer.join(5)
    assert not warmer.is_alive()
