"""Arrow columns from numpy arrays and byte ranges, without a Python object per row.

Every array handed to Arrow here is newly computed (never a view of the decoder's scratch
tables, which the next batch overwrites): Arrow shares numpy memory instead of copying it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from core.model import UTC_MICROS
from processors.normalize.kernels import gather

NULL, MAIN, POOL = 0, 1, 2  # where a string row's bytes are: nowhere, the payloads, the pool


def string_array(data: np.ndarray, offsets: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """An Arrow string array over (data, int32 offsets); rows where ``valid`` is False are null."""
    count = offsets.shape[0] - 1
    bitmap = None
    nulls = 0
    if valid is not None:
        nulls = count - int(np.count_nonzero(valid))
        if nulls:
            bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, nulls)


class Pool:
    """Text made in Python (coerced values, derived names) for gathering beside the payloads."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._array: np.ndarray | None = None

    def add(self, text: str) -> tuple[int, int]:
        """(offset, length) of ``text``'s UTF-8 bytes in the pool."""
        raw = text.encode()
        off = self._size
        self._chunks.append(raw)
        self._size += len(raw)
        self._array = None
        return off, len(raw)

    def ranges(self, texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(source, offsets, lengths) of each text, added to the pool; None is a null row."""
        source = np.full(len(texts), POOL, np.int8)
        offs = np.zeros(len(texts), np.int64)
        lens = np.zeros(len(texts), np.int64)
        for i, text in enumerate(texts):
            if text is None:
                source[i] = NULL
            else:
                offs[i], lens[i] = self.add(text)
        return source, offs, lens

    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.frombuffer(b"".join(self._chunks), np.uint8)
        return self._array


class Ranges:
    """Per row, where a string column's value is: (source, offset, length)."""

    def __init__(self, source: np.ndarray, offs: np.ndarray, lens: np.ndarray) -> None:
        self.source, self.offs, self.lens = source, offs, lens

    @classmethod
    def nulls(cls, count: int) -> Ranges:
        return cls(np.zeros(count, np.int8), np.zeros(count, np.int64), np.zeros(count, np.int64))

    def set(
        self, rows: np.ndarray | slice, source: np.ndarray | int, offs: np.ndarray, lens: np.ndarray
    ) -> None:
        self.source[rows] = source
        self.offs[rows] = offs
        self.lens[rows] = lens

    def to_arrow(self, main: np.ndarray, pool: Pool) -> pa.Array:
        if not self.source.any():
            return pa.nulls(self.source.shape[0], pa.string())
        data, offsets = gather(main, pool.array(), self.source, self.offs, self.lens)
        return string_array(data, offsets, self.source != NULL)


def choose(strings: Sequence[str | None], codes: np.ndarray) -> pa.Array:
    """strings[codes[i]] per row (a None string is a null row): for columns of few values."""
    return pa.array(strings, pa.string()).take(pa.array(codes))


def ints(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    return pa.array(values, pa.int64(), mask=~valid)


def floats(values: np.ndarray, valid: np.ndarray) -> pa.Array:
    return pa.array(values, pa.float64(), mask=~valid)


def timestamps_us(micros: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(UTC_MICROS, micros.shape[0], [None, pa.py_buffer(micros)])
