"""Moved to ``tests.helpers.server``; kept until the last importer outside this change moves."""

from tests.helpers.server import ServerProcess, free_port

__all__ = ["ServerProcess", "free_port"]
