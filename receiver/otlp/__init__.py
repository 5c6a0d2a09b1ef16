"""The ``otlp`` receiver: OTLP/gRPC and OTLP/HTTP over one export handler.

The factory (``TYPE``, ``Config``, ``create``) is in ``receiver``; importing this
package imports nothing else, so its small modules can be used without loading the rest.

Used from outside this folder, on purpose: the door of ``handler`` (``ExportHandler`` and its
``ExportResult``, ``TenantKeys``, ``screen_spans``), which every receiver and the write-ahead
log's replay screen spans through; the transports are this receiver's own."""
