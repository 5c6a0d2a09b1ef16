"""Stored span data is data, never markup or terminal control (issue 10, items 7 and 8).

Spans whose agent id, agent name, owner, user id, error message and model hold rich markup,
terminal escape sequences, HTML and Slack mrkdwn go through the real pipeline in this process
into a data directory; then the real CLI (a subprocess, as a user runs it) reports, queries,
shows spend (``cost``, by agent and by model, with the leaks) and lists alerts on it, and an
alert on the hostile agent goes to a fake Slack and a fake JSON webhook.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode, set_span_in_context

from agentwatch.config import load_config
from agentwatch.pipeline import assemble
from alerting.alerting import Alerting
from alerting.config import AlertsConfig, NotifierConfig, RuleConfig
from core.model import OtlpRecord
from evals.tracing import PipelineSink, SinkSpanExporter
from tests.helpers.fake_http import FakeServer, Reply, Seen

pytestmark = pytest.mark.process  # the CLI, as a user runs it

TITLE = "\x1b]0;pwned\x07"  # sets the terminal's title
CLEAR = "\x1b[2J"  # clears the screen
SLACK_PING = "<!channel>"
SLACK_LINK = "<http://evil.example|click here>"
SCRIPT = "<script>alert(1)</script>"
AGENT = f"bot[/] [bold]x[/bold] {SLACK_PING} {SLACK_LINK} {TITLE}{CLEAR}\u202e|&lt;"
USER = f"[/]{SCRIPT}{CLEAR}\r\x9b6n"
OWNER = f"[bold]boss[/bold]\n{TITLE}"
MESSAGE = f"{SCRIPT} {SLACK_PING} [/] {TITLE}{CLEAR}\nsecond | line\x08"
MODEL = f"gpt[/]x [bold]y[/bold] {TITLE}"  # no known price: listed as cost_unknown_model
RUNS = 6


def _send(data_dir: Path, start: datetime) -> None:
    """RUNS failed runs of the hostile agent (distinct users), through normalize → classify → Parquet."""
    assembly = assemble(load_config(None).with_data_dir(str(data_dir)))
    assembly.start()
    provider = TracerProvider(resource=Resource.create({"service.name": "hostile"}))
    provider.add_span_processor(SimpleSpanProcessor(SinkSpanExporter(PipelineSink(assembly.pipelines[0]))))
    tracer = provider.get_tracer("hostile")
    try:
        for n in range(RUNS):
            begin = int((start + timedelta(minutes=n)).timestamp() * 1e9)
            attributes = {"gen_ai.agent.id": AGENT, "gen_ai.agent.name": AGENT, "agent.owner": OWNER,
                          "user.id": f"{USER}{n}"}  # fmt: skip
            span = tracer.start_span("agent_run", start_time=begin, attributes=attributes)
            chat: dict[str, str | int] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": MODEL,
                                          "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 10}  # fmt: skip
            call = tracer.start_span(
                "chat", set_span_in_context(span), attributes=chat, start_time=begin + 10**6
            )
            call.end(end_time=begin + 5 * 10**8)
            span.set_status(Status(StatusCode.ERROR, MESSAGE))
            span.end(end_time=begin + 10**9)
        # A log line of the hostile agent's process, written through the same pipeline.
        request = ExportLogsServiceRequest()
        item = request.resource_logs.add().scope_logs.add().log_records.add(
            time_unix_nano=int(start.timestamp() * 1e9), severity_text=AGENT
        )
        item.body.string_value = MESSAGE
        item.attributes.add(key="user.id").value.string_value = USER
        assembly.pipelines[0].consume_records([OtlpRecord.from_logs_request(request)])
    finally:
        provider.shutdown()
        assembly.shutdown()


def _alert(data_dir: Path, now: datetime) -> list[Seen]:
    """Fire a failure-rate rule on the hostile agent; what Slack and the webhook received."""
    with FakeServer() as fake:
        fake.script("/slack", Reply(200, raw=b"ok"))
        fake.script("/hook", Reply(204, raw=b""))
        notifiers = {"slack": NotifierConfig("slack", f"{fake.url}/slack", backoff=0.01, retries=0),
                     "hook": NotifierConfig("webhook", f"{fake.url}/hook", backoff=0.01, retries=0)}  # fmt: skip
        rule = RuleConfig(
            "failing", "failure_rate", threshold=0.2, window=3600, min_runs=2, notify=("slack", "hook")
        )
        config = AlertsConfig(public_url="https://aw.acme.com", rules=(rule,), notifiers=notifiers)
        alerting = Alerting(config, (), data_dir, lambda: now)
        try:
            assert [t.state for t in alerting.run_once()] == ["firing"]
        finally:
            alerting.stop()
    return fake.seen


@dataclass(frozen=True)
class Hostile:
    data_dir: Path
    sent: list[Seen]
    """What the fake Slack (/slack) and JSON webhook (/hook) received."""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    now = datetime.now(UTC)
    _send(data_dir, now - timedelta(minutes=30))
    return Hostile(data_dir, _alert(data_dir, now))


def agentwatch(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["COLUMNS"] = "200"  # wide enough that query's table shows each value on one line
    return subprocess.run(
        [sys.executable, "-m", "agentwatch", *args], capture_output=True, text=True, check=False, env=env
    )


def assert_terminal_safe(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 0, the data shown literally, no control character of the data reaching the terminal."""
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for raw in ("\x1b", "\x07", "\x08", "\r", "\x9b", "\u202e"):
        assert raw not in out, repr(raw)
    assert "[/]" in out and "[bold]x[/bold]" in out and SLACK_PING in out
    assert r"\x1b]0;pwned\x07\x1b[2J\u202e" in out
    return out


def test_report_text(hostile: Hostile) -> None:
    out = assert_terminal_safe(agentwatch("report", "--data-dir", str(hostile.data_dir)))
    assert r"most affected users: [/]<script>alert(1)</script>\x1b[2J\r\x9b6n0 (1/1 failed)" in out


def test_query_table(hostile: Hostile) -> None:
    sql = "SELECT DISTINCT agent_id, agent_name, error_message FROM spans WHERE name = 'agent_run'"
    out = assert_terminal_safe(agentwatch("query", "--data-dir", str(hostile.data_dir), sql))
    assert r"\x1b]0;pwned\x07\x1b[2J\nsecond | line\x08" in out
    assert "(1 row)" in out


def test_query_of_log_records(hostile: Hostile) -> None:
    sql = "SELECT severity_text AS agent_id, body, user_id FROM logs"
    out = assert_terminal_safe(agentwatch("query", "--data-dir", str(hostile.data_dir), sql))
    assert r"\x1b]0;pwned\x07\x1b[2J\nsecond | line\x08" in out
    assert "(1 row)" in out


def test_query_json_and_csv_stay_raw(hostile: Hostile) -> None:
    """Machine formats are data for programs: the exact stored value, escaped only by JSON or CSV."""
    sql = "SELECT DISTINCT agent_id FROM spans WHERE name = 'agent_run'"
    doc = agentwatch("query", "--data-dir", str(hostile.data_dir), "--format", "json", sql)
    assert doc.returncode == 0 and json.loads(doc.stdout) == [{"agent_id": AGENT}]
    table = agentwatch("query", "--data-dir", str(hostile.data_dir), "--format", "csv", sql)
    assert table.returncode == 0 and table.stdout == f"agent_id\n{AGENT}\n"


def test_cost_text(hostile: Hostile) -> None:
    """The unknown model's name went into a rich markup string (a MarkupError: exit 1)."""
    out = assert_terminal_safe(agentwatch("cost", "--data-dir", str(hostile.data_dir), "--leaks"))
    model = r"gpt[/]x [bold]y[/bold] \x1b]0;pwned\x07"
    assert f"cost_unknown_model: {model} (6 calls): no price known" in out
    assert "where money leaks" in out


def test_cost_by_model_and_a_hostile_filter(hostile: Hostile) -> None:
    """By model, the model is a table cell; the --agent given (here the hostile agent's id) is in
    the table's title, which is not markup either."""
    result = agentwatch("cost", "--data-dir", str(hostile.data_dir), "--by", "model", "--agent", AGENT)
    out = assert_terminal_safe(result)
    assert r"gpt[/]x [bold]y[/bold] \x1b]0;pwned\x07" in out
    assert "spend by model (agent bot[/] [bold]x[/bold] <!channel>" in out


def test_alerts_list(hostile: Hostile) -> None:
    out = assert_terminal_safe(agentwatch("alerts", "list", "--data-dir", str(hostile.data_dir)))
    assert "failing" in out and "failure rate 100% > 20% (6 of 6 runs in the last 1h)" in out


def table_shapes(md: str) -> list[set[int]]:
    """Per Markdown table, the numbers of cell-separating pipes of its rows (GFM: ``\\|`` is no separator)."""
    tables: list[list[str]] = []
    previous = ""
    for line in md.splitlines():
        if line.startswith("| "):
            if not previous.startswith("| "):
                tables.append([])
            tables[-1].append(line)
        previous = line
    return [{re.sub(r"\\.", "", row).count("|") for row in rows} for rows in tables]


def test_markdown_report_escapes_html_and_table_syntax(hostile: Hostile) -> None:
    result = agentwatch("report", "--data-dir", str(hostile.data_dir), "--format", "markdown")
    assert result.returncode == 0, result.stderr
    md = result.stdout
    for raw in ("<script", SLACK_PING, "<http", "\x1b", "\r", "\u202e", "[/]"):
        assert raw not in md, repr(raw)
    agent = (r"bot\[/\] \[bold\]x\[/bold\] &lt;!channel&gt; &lt;http://evil.example\|click here&gt; "
             r"\\x1b\]0;pwned\\x07\\x1b\[2J\\u202e\|&amp;lt;")  # fmt: skip
    assert f"\n## {agent}, tenant default\n" in md
    owner = r"\[bold\]boss\[/bold\]\\n\\x1b\]0;pwned\\x07"
    assert f"| default | {agent} | {owner} | 6 | 6 | 100.0% |" in md
    assert r"| \[/\]&lt;script&gt;alert(1)&lt;/script&gt;\\x1b\[2J\\r\\x9b6n0 | 1 | 1 |" in md
    # No data pipe or newline adds or splits a cell: summary, failure types, users, signals.
    assert table_shapes(md) == [{14}, {4}, {4}, {10}]
    signal = md.splitlines()[-1]  # the one failure signal, last in the report
    assert r"| &lt;script&gt;alert(&lt;n&gt;)&lt;/script&gt; &lt;!channel&gt; \[/\] " in signal
    assert r"\\x1b\[&lt;n&gt; second \| line\\x08 | 6 |" in signal  # the template: newline and numbers masked


def test_html_report_escapes_every_value(hostile: Hostile, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = agentwatch("report", "--data-dir", str(hostile.data_dir), "--format", "html", "-o", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page and SLACK_PING not in page and "<http" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\x1b" not in page and "\u202e" not in page
    agent = r"bot[/] [bold]x[/bold] &lt;!channel&gt; &lt;http://evil.example|click here&gt; \x1b]0;pwned\x07"
    assert f"<h2 id='agent-{agent}" in page and f"<td>{agent}" in page


def test_slack_payload_escapes_data_and_keeps_its_own_link(hostile: Hostile) -> None:
    (slack,) = [s.body for s in hostile.sent if s.path == "/slack"]
    assert isinstance(slack, dict)
    # & < > and nothing else escaped, as Slack's formatting rules say.
    agent = AGENT.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert agent.endswith("|&amp;lt;")
    assert agent.startswith("bot[/] [bold]x[/bold] &lt;!channel&gt; &lt;http://evil.example|click here&gt; ")
    what = "failure rate 100% &gt; 20% (6 of 6 runs in the last 1h)"
    head = f":rotating_light: FIRING [failing] {agent} in default: {what}"
    assert slack["text"] == head
    assert slack["blocks"][0] == {"type": "section", "text": {"type": "mrkdwn", "text": f"*{head}*"}}
    body = slack["blocks"][1]["text"]["text"].splitlines()
    assert body[:4] == ["*Value:* 1 (threshold 0.2)", "*Runs:* 6", "*Affected users:* 6",
                        "*Top failure types:* other_error x6"]  # fmt: skip
    # agentwatch's own link stays live: the agent in its URL is percent-encoded, in its label escaped.
    url = f"https://aw.acme.com/agents/{quote(AGENT, safe='')}?tenant=default"
    assert body[-1] == f"<{url}|Open {agent} in agentwatch>"
    assert "<!channel>" not in json.dumps(slack) and "<http://evil" not in json.dumps(slack)


def test_webhook_payload_stays_raw_json(hostile: Hostile) -> None:
    (hook,) = [s.body for s in hostile.sent if s.path == "/hook"]
    assert isinstance(hook, dict)
    assert (hook["state"], hook["agent"], hook["summary"]) == (
        "firing",
        AGENT,
        "failure rate 100% > 20% (6 of 6 runs in the last 1h)",
    )
    assert hook["url"] == f"https://aw.acme.com/agents/{quote(AGENT, safe='')}?tenant=default"
