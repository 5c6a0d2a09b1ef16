"""The dashboard in headless Chromium (Playwright, driving Debian's ``chromium``) against a real
``agentwatch serve`` fed by ``agentwatch demo``: every page loads without a console error, a page
error, a failed request or an HTTP error; shows what the demo is known to produce; the links lead
from the overview to the failing span; the range and tenant controls reload the view.

Each page's full-page screenshot lands in ``test-artifacts/dashboard-<name>.png`` (light), plus
``dashboard-overview-dark.png``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    Response,
    sync_playwright,
)

from tests.helpers.server import ServerProcess

pytestmark = pytest.mark.process

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
EXPENSE_BOT = "agt_7f3a9c21"
DEMO_AGENTS = {  # label as the dashboard writes it -> tenant
    "expense-bot (agt_7f3a9c21)": "acme",
    "it-helpdesk (agt_1b44e0d8)": "acme",
    "hr-policy (agt_52e8b0aa)": "acme",
    "sales-research": "globex",
}
TIMEOUT_MS = 20_000

ColorScheme = Literal["light", "dark"]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module, holding the demo's 200 runs."""
    # Budgets the demo's spend shows on the Cost page (the burn chart, its forecast band).
    budgets = "budgets:\n  acme: {tenant: acme, monthly_usd: 50}\n  finance: {tenant: acme, team: finance, monthly_usd: 5}\n"
    server = ServerProcess(tmp_path_factory.mktemp("dashboard"), extra_config=budgets).start()
    try:
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "agentwatch",
                "demo",
                "--endpoint",
                server.grpc_endpoint,
                "--runs",
                "200",
                "--api",
                f"http://127.0.0.1:{server.api_port}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "sent 200 runs" in sent.stdout and "tenants acme, globex" in sent.stdout, sent.stdout
        stored = server.wait_for_count("SELECT count(*) FROM runs", 200, timeout=60)
        assert stored == 200, f"{stored} runs stored of 200:\n{server.log()}"
        yield server
    finally:
        if server.proc is not None and server.stop() != 0:
            print(server.log())


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is not on PATH: `make browser` installs it (apt-get install chromium)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Tab:
    """One browser page on the dashboard, with everything that went wrong on it so far."""

    page: Page
    base: str
    problems: list[str] = field(default_factory=list)

    def watch(self) -> None:
        def console(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                self.problems.append(f"console {message.type}: {message.text} ({message.location})")

        def failed(request: Request) -> None:
            self.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

        def response(response: Response) -> None:
            if response.status >= 400:
                self.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")

        self.page.on("console", console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("requestfailed", failed)
        self.page.on("response", response)

    def goto(self, path: str) -> None:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, path
        self.settle()

    def settle(self) -> None:
        """Wait for the page's data, its charts drawn, and no error in place of the page."""
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_selector("#main .loading", state="detached")
        self.page.wait_for_function(
            "[...document.querySelectorAll('#main .chart')].every((c) => c.querySelector('.main-svg'))"
        )
        alert = self.page.locator("#main [role=alert]")
        assert alert.count() == 0, alert.first.inner_text()

    def path(self) -> str:
        return urlsplit(self.page.url).path

    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.page.url).query)

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=ARTIFACTS / f"dashboard-{name}.png", full_page=True)

    def assert_clean(self) -> None:
        assert self.problems == [], "\n".join(self.problems)


OpenTab = Callable[..., Tab]


@pytest.fixture
def open_tab(browser: Browser, demo_server: ServerProcess) -> Iterator[OpenTab]:
    contexts: list[BrowserContext] = []

    def open_(color_scheme: ColorScheme = "light") -> Tab:
        context = browser.new_context(color_scheme=color_scheme, viewport={"width": 1366, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        tab = Tab(context.new_page(), f"http://127.0.0.1:{demo_server.api_port}")
        tab.watch()
        return tab

    yield open_
    for context in contexts:
        context.close()


def texts(tab: Tab, selector: str) -> list[str]:
    return [text.strip() for text in tab.page.locator(selector).all_inner_texts()]


def test_overview(open_tab: OpenTab) -> None:
    tab = open_tab()
    tab.goto("/")
    tab.shot("overview")
    assert tab.page.locator("h1").inner_text() == "Overview"
    cards = dict(
        zip(tab.page.locator(".card .label").all_text_contents(), texts(tab, ".card .value"), strict=True)
    )
    assert cards["runs"] == "200"  # all the demo's runs, sent over the last two hours
    # Spend against the configured budgets (the demo's spend is all this month's).
    assert texts(tab, "table.overview-budgets td:first-child") == ["acme", "finance"]
    spent = texts(tab, "table.overview-budgets td:nth-child(4)")
    assert spent[0].endswith(" of $50.00") and spent[1].endswith(" of $5.00")
    panel = tab.page.locator(".panel", has=tab.page.locator("h2", has_text="Agents failing now"))
    assert "expense-bot (agt_7f3a9c21)" in texts(tab, "table.failing-agents td:first-child")
    assert panel.locator(f'table.failing-agents a[data-agent="{EXPENSE_BOT}"]').inner_text() == (
        "expense-bot (agt_7f3a9c21)"
    )
    tab.assert_clean()


def test_overview_dark(open_tab: OpenTab) -> None:
    tab = open_tab("dark")
    tab.goto("/")
    tab.shot("overview-dark")
    background = tab.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(17, 21, 28)"  # --bg of the dark scheme
    tab.assert_clean()


def test_agents(open_tab: OpenTab) -> None:
    tab = open_tab()
    tab.goto("/agents")
    tab.shot("agents")
    rows = tab.page.locator("table.agents tbody tr")
    assert rows.count() == 4
    listed = {
        row.locator("td").nth(0).inner_text(): row.locator("td").nth(1).inner_text() for row in rows.all()
    }
    assert listed == DEMO_AGENTS
    assert sum(int(runs) for runs in texts(tab, "table.agents tbody td:nth-child(3)")) == 200
    tab.assert_clean()


def test_agent(open_tab: OpenTab) -> None:
    tab = open_tab()
    tab.goto(f"/agents/{EXPENSE_BOT}?tenant=acme")
    tab.page.wait_for_selector("#implicit-over-time .chart .main-svg")  # loaded apart
    tab.shot("agent")
    assert tab.page.locator("h1").inner_text().startswith("expense-bot (agt_7f3a9c21)")
    assert "Works for the owner, fails for others" in tab.page.locator("#cross-user").inner_text()
    owners = tab.page.locator("table.users tbody tr.owner")
    assert owners.count() == 1
    assert owners.locator("td").first.inner_text().split() == ["alice@acme.com", "owner"]
    assert tab.page.locator("table.recent a[data-trace]").count() > 0
    # The demo's users' feedback, beside the failure types of the runs it is on (the API's numbers).
    feedback = httpx.get(f"{tab.base}/api/v1/agents/{EXPENSE_BOT}?tenant=acme").json()["agent"]["feedback"]
    shown = [row.split("\t") for row in texts(tab, "table.feedback-types tbody tr")]
    assert shown == [
        ["(did not fail)" if t["failure_type"] == "none" else t["failure_type"], str(t["pieces"]),
         f"{t['negative']} ({100 * t['negative_rate']:.1f}%)"]
        for t in feedback["by_failure_type"]
    ]  # fmt: skip
    assert len(shown) >= 2
    tab.page.wait_for_selector("#implicit-over-time .chart .main-svg")
    assert tab.page.locator("#feedback .chart").count() == 2  # asked again / abandoned; negative feedback
    assert tab.page.locator("#feedback .chart .main-svg").count() > 0
    tab.assert_clean()


def test_operations(open_tab: OpenTab) -> None:
    tab = open_tab()
    tab.goto("/operations")
    tab.shot("operations")
    assert tab.page.locator("h1").inner_text() == "Operations · refreshes every 15 s"
    assert tab.page.locator('nav a[data-nav="operations"]').get_attribute("aria-current") == "page"
    # every chart drawn: runs per step, the heatmap, latency by model, tool and provider
    assert tab.page.locator("#main .chart .main-svg").count() >= 5
    taxonomy = texts(tab, "table.taxonomy td:first-child")
    assert "auth_failed" in taxonomy  # the demo's expense-bot: a connector rejects others' credentials
    auth = tab.page.locator(
        "table.taxonomy tr", has=tab.page.get_by_role("cell", name="auth_failed", exact=True)
    )
    assert auth.locator(f'a[data-agent="{EXPENSE_BOT}"]').count() == 1
    tab.assert_clean()


def test_cost(open_tab: OpenTab) -> None:
    tab = open_tab()
    tab.goto("/cost")
    tab.shot("cost")
    assert tab.page.locator("h1").inner_text().startswith("Cost · $")  # the demo's model calls are priced
    agents = texts(tab, "table.cost-rows tbody td:first-child")
    assert sorted(agents) == sorted(
        [
            "expense-bot (agt_7f3a9c21)",
            "it-helpdesk (agt_1b44e0d8)",
            "hr-policy (agt_52e8b0aa)",
            "sales-research",
        ]
    )
    assert tab.page.locator("#main .chart").count() == 2  # spend over time, the budgets' burn
    leaking = texts(tab, "table.leaks tbody td:first-child")
    assert sorted(leaking) == sorted(DEMO_AGENTS)  # every agent, with what it wasted
    budgets = texts(tab, "table.budgets tbody td:first-child")
    assert budgets == ["acme", "finance"]
    scopes = texts(tab, "table.budgets tbody td:nth-child(2)")
    assert scopes == ["acme", "acme / team finance"]
    tab.page.select_option("#cost-by", "model")
    tab.page.wait_for_url("**/cost?by=model")
    tab.settle()
    models = texts(tab, "table.cost-rows tbody td:first-child")
    assert "gpt-4o-2024-08-06" in models and "claude-sonnet-4" in models
    assert tab.page.locator("#main .error").count() == 0  # every demo model has a price
    tab.assert_clean()


@pytest.mark.parametrize(
    ("name", "heading", "message"),
    [
        ("evals", "Evals", "No eval run in this window."),  # the demo sends no eval runs
        ("alerts", "Alerts", "No alert fired, repeated or resolved in this window."),  # no rules configured
    ],
)
def test_empty_pages(open_tab: OpenTab, name: str, heading: str, message: str) -> None:
    tab = open_tab()
    tab.goto(f"/{name}")
    tab.shot(name)
    assert tab.page.locator("h1").inner_text() == heading
    assert tab.page.locator(f'nav a[data-nav="{name}"]').get_attribute("aria-current") == "page"
    assert tab.page.locator("#main .empty p").first.inner_text() == message
    tab.assert_clean()


def test_click_through_to_the_failing_span(open_tab: OpenTab) -> None:
    tab = open_tab()
    tab.goto("/")
    with tab.page.expect_navigation():
        tab.page.locator(f'table.failing-agents a[data-agent="{EXPENSE_BOT}"]').click()
    tab.settle()
    assert tab.path() == f"/agents/{EXPENSE_BOT}"
    assert tab.query()["tenant"] == ["acme"]

    first = tab.page.locator("table.recent tbody tr").first
    link = first.locator("a[data-trace]")
    trace_id = link.get_attribute("data-trace")
    failure_type = first.locator("td").nth(3).inner_text().strip()
    assert trace_id is not None and len(trace_id) == 32
    assert failure_type  # every recent failure of expense-bot names its type (auth_failed, mostly)
    with tab.page.expect_navigation():
        link.click()
    tab.settle()
    tab.shot("trace")
    assert tab.path() == f"/traces/{trace_id}"
    failing = tab.page.locator(".wf .row.failing")
    assert failing.count() == 1
    assert failing.get_attribute("data-span")
    assert "selected" in (failing.get_attribute("class") or "").split()
    detail = tab.page.locator("#span-detail").inner_text()
    assert failure_type in detail or "auth_failed" in detail, detail
    # The agent's error log lines of the trace, each naming the span it was written in.
    logs = httpx.get(f"{tab.base}/api/v1/traces/{trace_id}").json()["logs"]
    assert logs and all(x["severity_text"] == "ERROR" for x in logs)
    shown = texts(tab, "table.logs tbody td:nth-child(5)")
    assert shown == [x["body"] for x in logs]
    tab.assert_clean()


def test_range_switch_keeps_the_agent(open_tab: OpenTab) -> None:
    tab = open_tab()
    tab.goto(f"/agents/{EXPENSE_BOT}?tenant=acme")
    assert tab.page.locator("#range").input_value() == "24h"
    with tab.page.expect_navigation():
        tab.page.select_option("#range", "7d")
    tab.settle()
    assert tab.path() == f"/agents/{EXPENSE_BOT}"
    assert tab.query() == {"tenant": ["acme"], "since": ["7d"]}
    assert tab.page.locator("#range").input_value() == "7d"
    assert tab.page.locator("h1").inner_text().startswith("expense-bot (agt_7f3a9c21)")
    tab.assert_clean()


def test_tenant_switch_lists_only_its_agents(open_tab: OpenTab) -> None:
    tab = open_tab()
    tab.goto("/agents")
    assert texts(tab, "#tenant option") == ["all tenants", "acme", "globex"]
    with tab.page.expect_navigation():
        tab.page.select_option("#tenant", "globex")
    tab.settle()
    assert tab.path() == "/agents"
    assert tab.query() == {"tenant": ["globex"]}
    assert tab.page.locator("#tenant").input_value() == "globex"
    assert texts(tab, "table.agents tbody td:first-child") == ["sales-research"]
    tab.assert_clean()
