"""What an alert says: one ``Message`` per transition, rendered for Slack (readable text and
blocks) or as a generic JSON document (``agentwatch.alert/v1``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

from alerting.rules import Finding
from core.agents import agent_label

_HEADS = {"firing": ":rotating_light: FIRING", "repeat": ":rotating_light: STILL FIRING",
          "resolved": ":white_check_mark: RESOLVED", "test": ":test_tube: TEST"}  # fmt: skip


@dataclass(frozen=True)
class Message:
    state: str  # firing | repeat | resolved | test
    finding: Finding
    time: datetime
    fired_at: datetime
    url: str | None = None
    """The agent's page, when ``alerts.public_url`` is set."""
    now_text: str | None = None
    """For ``resolved``: what the rule measures now (``failure rate 8% ≤ 20% in the last 15m``)."""
    public_url: str | None = None
    """``alerts.public_url``: example traces link to their page there (``/traces/{trace_id}``)."""


def agent_url(public_url: str | None, tenant: str, agent: str) -> str | None:
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/agents/{quote(agent, safe='')}?tenant={quote(tenant, safe='')}"


def trace_url(public_url: str | None, trace_id: str) -> str | None:
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/traces/{quote(trace_id, safe='')}"


def headline(message: Message) -> str:
    f = message.finding
    if message.state == "resolved":
        now = message.now_text or f"no longer {f.summary.split(' (')[0]}"
        return f"{_HEADS['resolved']} [{f.rule}] {_agent(f)}: {now}"
    return f"{_HEADS[message.state]} [{f.rule}] {_agent(f)}: {f.summary}"


def _agent(f: Finding) -> str:
    """``expense-bot (agt_7f3a9c21) in acme``: the agent's name beside its id, and its tenant."""
    return f"{agent_label(f.agent, f.agent_name)} in {f.tenant}"


def lines(message: Message) -> list[str]:
    f = message.finding
    if message.state == "resolved" and message.now_text:
        out = [f"*Now:* {message.now_text}", f"*Was:* {f.summary}"]
    else:
        out = [f"*Value:* {_number(f.value)} (threshold {_number(f.threshold)})"]
    if f.runs:
        out.append(f"*Runs:* {f.runs}")
    if f.kind not in ("budget", "spend_spike", "eval_regression"):
        out.append(f"*Affected users:* {f.affected_users}")
    if f.top_failure_types:
        out.append("*Top failure types:* " + ", ".join(f"{t} x{n}" for t, n in f.top_failure_types))
    if f.example_trace_ids:
        links = [(t, trace_url(message.public_url, t)) for t in f.example_trace_ids]
        out.append("*Example traces:* " + ", ".join(f"<{u}|{t}>" if u else f"`{t}`" for t, u in links))
    if message.state in ("repeat", "resolved"):
        out.append(f"*Since:* {message.fired_at.isoformat(timespec='seconds')}")
    if message.url:
        out.append(f"<{message.url}|Open {f.agent_name or f.agent} in agentwatch>")
    return out


def _mrkdwn(text: str) -> str:
    """Data as literal Slack text: no ``<!channel>`` ping, ``<@user>`` mention or ``<url|label>`` link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_safe(f: Finding) -> Finding:
    """Every text of the finding escaped for Slack (the message's own link, ``url``, stays live)."""
    return replace(
        f, rule=_mrkdwn(f.rule), kind=_mrkdwn(f.kind), tenant=_mrkdwn(f.tenant), agent=_mrkdwn(f.agent),
        agent_name=None if f.agent_name is None else _mrkdwn(f.agent_name),
        summary=_mrkdwn(f.summary), top_failure_types=tuple((_mrkdwn(t), n) for t, n in f.top_failure_types),
        example_trace_ids=tuple(map(_mrkdwn, f.example_trace_ids)),
    )  # fmt: skip


def slack_payload(message: Message) -> dict[str, Any]:
    now_text = None if message.now_text is None else _mrkdwn(message.now_text)
    message = replace(message, finding=_slack_safe(message.finding), now_text=now_text)
    head = headline(message)
    body = "\n".join(lines(message))
    return {
        "text": head,  # the notification and fallback text
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{head}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
        ],
    }


def webhook_payload(message: Message) -> dict[str, Any]:
    f = message.finding
    payload: dict[str, Any] = {
        "schema": "agentwatch.alert/v1", "state": message.state, "rule": f.rule, "kind": f.kind,
        "tenant": f.tenant, "agent": f.agent, "agent_name": f.agent_name, "value": f.value,
        "threshold": f.threshold, "summary": f.summary, "runs": f.runs, "affected_users": f.affected_users,
        "top_failure_types": [{"failure_type": t, "count": n} for t, n in f.top_failure_types],
        "example_trace_ids": list(f.example_trace_ids), "url": message.url,
        "trace_urls": [u for t in f.example_trace_ids if (u := trace_url(message.public_url, t))],
        "time": message.time.isoformat(), "fired_at": message.fired_at.isoformat(),
    }  # fmt: skip
    if message.state == "resolved" and message.now_text:
        payload["now"] = message.now_text  # value/threshold/summary stay those it fired with
    return payload


def _number(value: float) -> str:
    return f"{value:g}"
