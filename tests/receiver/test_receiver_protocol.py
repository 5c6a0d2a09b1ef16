"""Every receiver speaks ``core.component.Receiver``: start, shutdown with grace, its bound ports
by protocol, its counters. The service and ``/metrics`` read receivers through nothing else."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from pathlib import Path

import httpx
import pytest
from grpc import aio
from prometheus_client.parser import text_string_to_metric_families

from agentwatch.config import parse_config
from agentwatch.metrics import registry_for, render
from agentwatch.service import Service
from core.component import Receiver, ReceiverCounters, ReceiverSettings
from core.errors import DecodeError
from core.model import OtlpRecord
from receiver import memory
from receiver.otlp import receiver as otlp
from receiver.synthetic import receiver as synthetic
from storage.catalog import connect
from storage.dedup import RecentSpans
from tests.helpers.otlp import EXPORT, PROTO, request


class ImmediateSink:
    """Durable at once: keeps the records it was handed."""

    def __init__(self) -> None:
        self.records: list[OtlpRecord] = []

    def submit(self, record: OtlpRecord) -> Future[None]:
        self.records.append(record)
        done: Future[None] = Future()
        done.set_result(None)
        return done


def test_the_otlp_receiver_names_its_bound_ports_and_counts_what_it_answered() -> None:
    config = otlp.Config(
        otlp.Protocols(otlp.GrpcConfig(endpoint="127.0.0.1:0"), otlp.HttpConfig(endpoint="127.0.0.1:0"))
    )
    sink = ImmediateSink()
    receiver = otlp.create(config, ReceiverSettings("otlp/edge", sink, RecentSpans(100)))
    assert isinstance(receiver, Receiver)
    assert receiver.endpoints() == {}
    assert receiver.counters() == ReceiverCounters(0, 0, 0, {})

    async def scenario() -> dict[str, int]:
        await receiver.start()
        ports = receiver.endpoints()
        try:
            url = f"http://127.0.0.1:{ports['http']}/v1/traces"
            async with httpx.AsyncClient() as client:
                bad_id = request(["ok", "bad"], trace=1)
                bad_id.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x01"
                assert (
                    await client.post(url, content=bad_id.SerializeToString(), headers=PROTO)
                ).status_code == 200
                assert (await client.post(url, content=b"\xff\xff", headers=PROTO)).status_code == 400
            async with aio.insecure_channel(f"127.0.0.1:{ports['grpc']}") as channel:
                export = channel.unary_unary(EXPORT)
                await export(request(["a", "b"], trace=2).SerializeToString(), timeout=10)
                await export(request(["a", "b"], trace=2).SerializeToString(), timeout=10)  # a retry
        finally:
            await receiver.shutdown(1.0)
        return ports

    ports = asyncio.run(scenario())
    assert sorted(ports) == ["grpc", "http"]
    assert all(port > 0 for port in ports.values())
    assert receiver.counters() == ReceiverCounters(
        accepted_spans=3, rejected_spans=1, duplicate_spans=2, refused={"decode_error": 1}
    )
    assert [(r.receiver, r.spans) for r in sink.records] == [("otlp/edge", 1), ("otlp/edge", 2)]


def test_one_protocol_only_names_one_port() -> None:
    config = otlp.Config(otlp.Protocols(http=otlp.HttpConfig(endpoint="127.0.0.1:0")))
    receiver = otlp.create(config, ReceiverSettings("otlp", ImmediateSink()))

    async def scenario() -> list[str]:
        await receiver.start()
        try:
            return list(receiver.endpoints())
        finally:
            await receiver.shutdown(1.0)

    assert asyncio.run(scenario()) == ["http"]


def test_the_synthetic_receiver_has_no_port_and_no_dummy_transports(tmp_path: Path) -> None:
    config = synthetic.Config(agent="bot", dataset="cases.jsonl", target="http://127.0.0.1:9/agent")
    receiver = synthetic.create(config, ReceiverSettings("synthetic/bot", ImmediateSink(), data_dir=tmp_path))
    assert isinstance(receiver, Receiver)
    assert receiver.endpoints() == {}
    assert receiver.counters() == ReceiverCounters()
    assert not hasattr(receiver, "grpc") and not hasattr(receiver, "http")


def test_the_memory_receiver_feeds_the_service_and_its_counters_reach_metrics(tmp_path: Path) -> None:
    config = parse_config(
        f"""
receivers:
  memory:
service:
  pipelines:
    traces:
      receivers: [memory]
      processors: [normalize]
      exporters: [parquet]
storage: {{data_dir: "{tmp_path}", converter: inline, flush_interval: 50ms}}
api: {{endpoint: "127.0.0.1:0"}}
""",
        "test",
    )
    service = Service(config)
    service.start()
    try:
        receiver = service.receivers["memory"]
        assert isinstance(receiver, memory.InMemoryReceiver)
        assert service.endpoints.receivers == {"memory": {}}
        assert service.endpoints.first("grpc") is None
        first = receiver.export(request(["a", "b"], trace=7))
        assert (first.accepted, first.rejected) == (2, 0)
        again = receiver.export(request(["a", "b", "c"], trace=7), tenant=None)
        assert (again.accepted, again.rejected) == (1, 0)
        with pytest.raises(DecodeError):
            receiver.export(b"\xff\xff")
        assert receiver.counters() == ReceiverCounters(3, 0, 2, {"decode_error": 1})
        metrics = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(render(registry_for(service)).decode())
            for sample in family.samples
        }
    finally:
        service.stop()
    assert metrics[("agentwatch_receiver_accepted_spans_total", (("receiver", "memory"),))] == 3
    assert metrics[("agentwatch_receiver_rejected_spans_total", (("receiver", "memory"),))] == 0
    refused = (("reason", "decode_error"), ("receiver", "memory"))
    assert metrics[("agentwatch_receiver_refused_requests_total", refused)] == 1
    assert metrics[("agentwatch_spans_deduplicated_total", ())] == 2
    names = connect(tmp_path).execute("SELECT name FROM spans ORDER BY name").fetchall()
    assert names == [("a",), ("b",), ("c",)]
