"""Message templates: an error message with its variable parts masked, so that messages that
differ only in ids and numbers group together.

Masks, in this order (each a vectorised ``regexp_replace`` over a whole column, never a
Python loop per message):

    URLs → <url>, e-mail addresses → <email>, quoted values ('…', "…", `…`) → <str>,
    UUIDs and hex ids of 8+ characters with a digit → <id>, file paths (/a/b) → <path>,
    numbers (ints, decimals, with units glued on like 30s or 5ms) → <n>, runs of spaces → one

so "ticket 4711 not found" and "ticket 815 not found" are one signal. A run without a message
gets the template "(no message)". A cluster's id is the first 8 hex digits of the md5 of
``failure_type|template``: stable across reports and data directories.

Templates are computed where partials are written (``storage.runparts``): once per failing
span at ingest, never over millions of runs at query time.
"""

from __future__ import annotations

import duckdb

# (pattern, replacement), applied in order; RE2 syntax (DuckDB's regexp_replace).
MASKS: tuple[tuple[str, str], ...] = (
    (r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"`]+", "<url>"),
    (r"[\w.+-]+@[\w-]+(\.[\w-]+)+", "<email>"),
    (r"'[^']*'|\"[^\"]*\"|`[^`]*`", "<str>"),
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "<id>"),
    (r"\b[0-9a-fA-F]*([0-9][0-9a-fA-F]*[a-fA-F]|[a-fA-F][0-9a-fA-F]*[0-9])[0-9a-fA-F]*\b", "<hex>"),
    (r"(^|[\s(=:,])(/[\w.<>-]+)+/?", "\\1<path>"),
    (r"\b\d+(\.\d+)?([a-zA-Z%]+)?\b", "<n>"),
    (r"\s+", " "),
)
NO_MESSAGE = "(no message)"


def mask_sql(column: str) -> str:
    """SQL for the template of ``column`` (a string expression); null for null or blank."""
    expr = column
    for pattern, replacement in MASKS:
        quoted_pattern = pattern.replace("'", "''")
        expr = f"regexp_replace({expr}, '{quoted_pattern}', '{replacement}', 'g')"
    return f"nullif(trim({expr}), '')"


def template_sql(column: str) -> str:
    """Like ``mask_sql``, with ``NO_MESSAGE`` for a missing message."""
    return f"coalesce({mask_sql(column)}, '{NO_MESSAGE}')"


def template(con: duckdb.DuckDBPyConnection, message: str | None) -> str:  # for tests and the CLI
    """The template of one message (for tests and the CLI)."""
    row = con.execute(f"SELECT {template_sql('$m')}", {"m": message}).fetchone()
    assert row is not None
    return str(row[0])
