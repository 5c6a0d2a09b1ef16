"""Self-observability: agentwatch's own counters at ``/metrics`` in Prometheus text format.

Components keep plain counters where the events happen; this collector reads them at scrape
time, so nothing on the ingest path touches a metrics library.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from agentwatch.service import Service

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

COMPONENT_COUNTERS = {
    "attribute_values_truncated": "String attribute values cut to normalize's max_attribute_value_length.",
    "attributes_dropped": (
        "Attributes dropped past normalize's max_attribute_count (span, event, resource, kvlist)."
    ),
    "attribute_keys_truncated": "Attribute keys cut to normalize's max_attribute_key_length.",
    "array_values_dropped": "Array elements dropped past normalize's max_array_length.",
    "span_events_dropped": "Span events dropped past normalize's max_events_per_span.",
    "cost_unknown_model_spans": "LLM spans with tokens whose model has no known price (cost_source unknown).",
}
"""Counters the pipeline components report (``component.Counted``), exported as
``agentwatch_<name>_total`` whether or not anything happened yet."""


class ServiceCollector(Collector):
    def __init__(self, service: Service) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        svc = self._service
        accepted = CounterMetricFamily(
            "agentwatch_receiver_accepted_spans", "Spans acknowledged (durable).", labels=["receiver"]
        )
        rejected = CounterMetricFamily(
            "agentwatch_receiver_rejected_spans",
            "Spans dropped from accepted requests (partial success).",
            labels=["receiver"],
        )
        logs = {
            kind: CounterMetricFamily(
                f"agentwatch_receiver_{kind}_log_records", help_text, labels=["receiver"]
            )
            for kind, help_text in (
                ("accepted", "Log records acknowledged (durable)."),
                ("rejected", "Log records dropped from accepted requests (partial success)."),
                ("duplicate", "Log records already stored (the same record digest), dropped."),
            )
        }
        refused = CounterMetricFamily(
            "agentwatch_receiver_refused_requests",
            "Requests refused whole, by reason.",
            labels=["receiver", "reason"],
        )
        for rec_id, receiver in svc.receivers.items():
            counts = receiver.counters()
            accepted.add_metric([rec_id], counts.accepted_spans)
            rejected.add_metric([rec_id], counts.rejected_spans)
            logs["accepted"].add_metric([rec_id], counts.accepted_log_records)
            logs["rejected"].add_metric([rec_id], counts.rejected_log_records)
            logs["duplicate"].add_metric([rec_id], counts.duplicate_log_records)
            for reason, count in sorted(counts.refused.items()):
                refused.add_metric([rec_id, reason], count)
        yield from (accepted, rejected, *logs.values(), refused)
        for kind, name, help_text, value in _service_values(svc):
            yield kind(name, help_text, value=value)
        for name, help_text in COMPONENT_COUNTERS.items():
            yield CounterMetricFamily(
                f"agentwatch_{name}", help_text, value=svc.drain.component_counts.get(name, 0)
            )


def _service_values(
    svc: Service,
) -> list[tuple[type[CounterMetricFamily | GaugeMetricFamily], str, str, float]]:
    duplicates = svc.replay_duplicates + sum(r.counters().duplicate_spans for r in svc.receivers.values())
    counter, gauge = CounterMetricFamily, GaugeMetricFamily
    return [
        (counter, "agentwatch_spans_written", "Spans written to Parquet.", svc.drain.spans_written),
        (
            counter,
            "agentwatch_spans_deduplicated",
            "Duplicate spans (same trace_id, span_id) dropped.",
            duplicates,
        ),
        (
            counter,
            "agentwatch_wal_bytes_written",
            "Bytes appended to the write-ahead log.",
            svc.wal.bytes_written,
        ),
        (
            counter,
            "agentwatch_wal_write_failures",
            "Write-ahead log appends refused or failed.",
            svc.wal.write_failures,
        ),
        (
            counter,
            "agentwatch_wal_replayed_records",
            "Records replayed from the log at start.",
            svc.replay.records,
        ),
        (
            counter,
            "agentwatch_wal_corrupt_tails",
            "Torn or corrupt log tails skipped at start.",
            svc.replay.corrupt_tails,
        ),
        (
            counter,
            "agentwatch_wal_damaged_regions",
            "Damaged stretches in the middle of log segments skipped at start (segment kept aside).",
            svc.replay.damaged_regions,
        ),
        (
            counter,
            "agentwatch_spans_quarantined",
            "Acknowledged spans no pipeline could convert, kept in the dead-letter file.",
            svc.dead_letters.spans,
        ),
        (
            gauge,
            "agentwatch_decoding_bytes",
            "Request bytes being read and decoded (storage.max_decoding_mib bounds it).",
            svc.decode_budget.held,
        ),
        (
            gauge,
            "agentwatch_queue_spans",
            "Acknowledged spans waiting to be converted.",
            svc.drain.queued_spans,
        ),
        (gauge, "agentwatch_queue_bytes", "Acknowledged bytes not yet in Parquet.", svc.admission.held),
        (
            gauge,
            "agentwatch_queue_limit_bytes",
            "Backpressure limit (storage.max_queue_mib).",
            svc.admission.limit,
        ),
        (
            counter,
            "agentwatch_pipeline_failures",
            "Conversion calls that failed (then retried, bisected or quarantined).",
            svc.drain.batches_failed,
        ),
        (
            counter,
            "agentwatch_judged_runs",
            "Production runs judged (evals.production).",
            svc.judging.stats.judged,
        ),
        (
            counter,
            "agentwatch_judge_marks",
            "Runs the judge marked (groundedness_drop).",
            svc.judging.stats.marked,
        ),
        (
            counter,
            "agentwatch_alert_messages",
            "Alert messages (fired, repeated, resolved) sent.",
            svc.alerting.stats.messages,
        ),
        (
            counter,
            "agentwatch_alert_delivery_failures",
            "Alert deliveries that failed after their retries.",
            svc.alerting.stats.deliveries_failed,
        ),
        (
            counter,
            "agentwatch_alert_rule_failures",
            "Alert rule evaluations that failed.",
            svc.alerting.stats.rule_failures,
        ),
        (
            counter,
            "agentwatch_judge_problems",
            "Production runs whose judge calls failed or answered badly.",
            svc.judging.stats.judge_problems,
        ),
        *(
            []
            if (board := svc.health) is None
            else [
                (counter, "agentwatch_health_runs", "Runs the health aggregate counted.", board.runs_counted),
                (
                    counter,
                    "agentwatch_health_dropped_digests",
                    "Digests of stored batches the health aggregate could not count (queue full, or bad).",
                    board.dropped_digests,
                ),
                (gauge, "agentwatch_health_queue_bytes", "Digests to be counted.", board.queued_bytes),
                (
                    gauge,
                    "agentwatch_health_pending_traces",
                    "Traces the health aggregate holds waiting for their root span.",
                    board.pending_traces,
                ),
            ]
        ),
    ]


def registry_for(service: Service) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(service))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
