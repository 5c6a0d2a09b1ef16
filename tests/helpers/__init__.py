"""Helpers shared by more than one test module (and by bench/); a helper used by one test module
lives beside it.

server        a real ``agentwatch serve`` process on free ports, and ``scrape`` of its /metrics
store         SDK spans stored through the assembled pipelines in process, as a server would
health_fixture  the day of agent runs with hand-computed numbers (report, alerting)
otlp          OTLP requests: an SDK agent run, hand-built OTLP/JSON, protobuf requests of named spans
clients       OTLP clients that retry until acknowledged (crash, shutdown, bench/sigterm.py)
auth          ingest tokens and the ``receivers.otlp.auth`` config that maps them
agents        in-process agents for eval tests (python: targets)
evals         the eval tests' dataset and ``agentwatch eval run`` as a subprocess
fake_http     a scripted HTTP server recording what it was sent (webhooks, judges, targets)
otlp_gen      hypothesis strategies for OTLP requests (the columnar decoder's property tests)
protobuf_reference  the protobuf reference decoder those property tests compare with
span_rows     canonical span rows written by the parquet exporter (catalog, runs, compaction)
span_files    many small span files for compaction (tests and bench/)
"""
