"""The ``bucket`` receiver: log records (and OTLP JSON traces) read from objects in a GCS or S3
bucket or a local directory, exactly once across restarts.

The factory (``TYPE``, ``Config``, ``create``) is in ``receiver``; importing this package
imports nothing else, so its small modules (the formats, the mapping, the cursor) can be used
alone, as ``agentwatch import`` does. The filesystem layer (fsspec, s3fs, gcsfs) is imported
only when a bucket is read."""
