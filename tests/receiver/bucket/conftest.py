from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.receiver.bucket.fixtures import Loop


@pytest.fixture
def loop() -> Iterator[Loop]:
    running = Loop()
    yield running
    running.close()
