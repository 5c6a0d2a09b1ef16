"""A config with a bucket receiver is read and checked without loading the filesystem layer
(fsspec, s3fs, gcsfs and the cloud SDKs under them): only reading a bucket does."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.process

CHECK = """
import sys
from agentwatch.config import parse_config
config = parse_config(
    "receivers:\\n  bucket/x:\\n    url: gs://acme/logs/\\n    mapping: workflow_run\\n"
    "  bucket/y:\\n    url: s3://acme/logs/\\n    format: cloud_logging\\n",
    "x.yaml",
)
heavy = ("fsspec", "s3fs", "gcsfs", "botocore", "aiobotocore", "google.cloud.storage")
print(sorted(m for m in heavy if m in sys.modules))
from receiver.bucket.source import parse_url, filesystem
filesystem(parse_url("/tmp"))
print(sorted(m for m in heavy if m in sys.modules))
"""


def test_reading_a_bucket_config_loads_no_filesystem_layer() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[]", "['fsspec']"]
