"""What ``capture_text: false`` drops from the ``attributes``, ``resource_attributes`` and ``events``
JSON columns: the attributes and events that carry what people wrote and models answered
(``conventions.REDACTED_*``), plus the attribute names a deployment maps to ``input_text`` and
``output_text``. The text columns themselves are emptied by the rules (``error_text``).

Decided once per distinct attribute key and event name of a batch; the JSON writer
(``attribute_json``) skips what is marked, so nothing of it reaches storage.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from processors.normalize import conventions as conv
from processors.normalize.decoded import Decoded, col
from processors.normalize.kernels import intern_ranges
from processors.normalize.wire import E_NAME_LEN, E_NAME_OFF

_MEMO_LIMIT = 100_000  # keys come from clients: the memo stays bounded


def redacted_attribute(key: str, extra: frozenset[str] = frozenset()) -> bool:
    """Whether an attribute named ``key`` carries message text (see conventions.REDACTED_*)."""
    if key in conv.REDACTED_ATTRIBUTES or key in extra:
        return True
    if key.startswith(conv.REDACTED_ATTRIBUTE_PREFIXES):
        return key.rpartition(".")[2] not in conv.REDACTED_KEEP_FIELDS
    return any(key.startswith(p) and key.endswith(s) for p, s in conv.REDACTED_ATTRIBUTE_PATTERNS)


class Redaction:
    """Per batch: which attribute keys and which events the JSON columns leave out."""

    def __init__(self, text_attributes: Iterable[str]) -> None:
        self.extra = frozenset(text_attributes)
        self._memo: dict[str, bool] = {}

    def keys(self, decoded: Decoded) -> np.ndarray:
        """Per key id of the batch: whether attributes with that key are left out."""
        out = np.zeros(len(decoded.keys), np.bool_)
        for k, key in enumerate(decoded.keys):
            hit = self._memo.get(key)
            if hit is None:
                hit = redacted_attribute(key, self.extra)
                if len(self._memo) < _MEMO_LIMIT:
                    self._memo[key] = hit
            out[k] = hit
        return out

    def events(self, decoded: Decoded) -> np.ndarray:
        """Per event row of the batch: whether the event is left out."""
        events = decoded.events
        if not events.shape[0]:
            return np.zeros(0, np.bool_)
        ids, first = intern_ranges(decoded.buf, col(events, E_NAME_OFF), col(events, E_NAME_LEN))
        names = [decoded.text(events[e, E_NAME_OFF], events[e, E_NAME_LEN]) for e in first.tolist()]
        dropped: np.ndarray = np.array([name in conv.REDACTED_EVENTS for name in names], np.bool_)
        per_event: np.ndarray = dropped[ids]
        return per_event
