"""Moved to ``tests.helpers.fake_http``; kept until the last importer outside this change moves."""

from tests.helpers.fake_http import FakeServer, Reply, Seen

__all__ = ["FakeServer", "Reply", "Seen"]
