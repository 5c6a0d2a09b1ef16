"""Run latencies kept as counts per logarithmic bucket: bounded memory, mergeable by addition.

Bucket ``b`` holds durations in ``[RATIO**b, RATIO**(b+1))`` milliseconds (durations under 1 ms
in bucket 0, those past the last bucket in the last). A percentile is read as the geometric
middle of its bucket, so it is within about 5% of the exact value (``RATIO`` = 1.1).
"""

from __future__ import annotations

import math

import numpy as np

RATIO = 1.1
BUCKETS = 200
"""Up to 1.1**200 ms (about 53 hours)."""
_LOG = math.log(RATIO)


def bucket_sql(column: str) -> str:
    """SQL: the bucket of the duration ``column`` (milliseconds)."""
    bucket = f"floor(ln(greatest(coalesce({column}, 0), 1)) / ln({RATIO}))"
    return f"least(greatest({bucket}, 0), {BUCKETS - 1})::INTEGER"


def percentile(counts: np.ndarray, q: float) -> float | None:
    """The ``q`` quantile (0-1) of a histogram, in milliseconds; None when it is empty."""
    total = int(counts.sum())
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    bucket = int(np.searchsorted(np.cumsum(counts), rank))
    return float(RATIO ** (bucket + 0.5))
