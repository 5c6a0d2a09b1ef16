"""The agent event model (``agent.request.started`` ... ``agent.budget.threshold_hit``): events
read from log records, span events and JSON lines (``model``, ``otlp``), and the spans they stand
for (``spans``), so an application that emits only events still gets runs.

Imports only ``core`` and the OTLP protobufs (floor 1)."""
