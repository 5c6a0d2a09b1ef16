"""``agentwatch query``'s terminal output: a table when it fits, else one field per line."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from agentwatch.queryformat import MAX_CELL, print_result


def render(columns: list[str], rows: list[list[object]], width: int = 120, layout: str = "auto") -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False)
    print_result(columns, rows, console, layout)  # type: ignore[arg-type]
    return out.getvalue()


def test_a_narrow_result_is_a_table() -> None:
    out = render(["outcome", "n"], [["success", 3], ["failure", 1]])
    assert out.splitlines() == [
        "┏━━━━━━━━━┳━━━┓",
        "┃ outcome ┃ n ┃",
        "┡━━━━━━━━━╇━━━┩",
        "│ success │ 3 │",
        "│ failure │ 1 │",
        "└─────────┴───┘",
        "(2 rows)",
    ]


def test_wide_rows_are_listed_one_field_per_line_within_the_terminal() -> None:
    columns = [f"column_{i:02d}" for i in range(30)]
    rows: list[list[object]] = [[f"value-0-{i}" for i in range(30)], [None] * 30]
    out = render(columns, rows)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert lines[0].startswith("─[ row 1 ]─") and len(lines[0]) == 120
    assert lines[1:3] == ["column_00 │ value-0-0", "column_01 │ value-0-1"]
    assert lines[31].startswith("─[ row 2 ]─")
    assert lines[32] == "column_00 │ "
    assert lines[-1] == "(2 rows)"
    assert len(lines) == 2 * 31 + 1


def test_long_values_are_folded_then_cut_and_the_cut_is_said() -> None:
    text = "x" * 1000
    out = render(["id", "error_message"], [["r1", text]], width=60, layout="vertical")
    lines = out.splitlines()
    room = 60 - len("error_message") - 3
    assert lines[1] == "id            │ r1"
    assert lines[2] == "error_message │ " + "x" * room
    assert lines[3:6] == ["              │ " + "x" * room] * 2 + ["              │ " + "x" * (room - 1) + "…"]
    assert lines[-1] == "(1 row; 1 value cut short: --format json shows them whole)"


def test_a_table_cuts_cells_to_the_cell_limit() -> None:
    out = render(["id", "note"], [["a", "y" * 200]], width=200, layout="table")
    assert ("y" * (MAX_CELL - 1) + "…") in out
    assert out.splitlines()[-1] == "(1 row; 1 value cut short: --format json shows them whole)"


def test_lists_and_maps_are_json_and_controls_are_escaped() -> None:
    out = render(["models", "msg"], [[["gpt-4o", "claude"], "a\x1b[2Jb\nc"]])
    assert '│ ["gpt-4o","claude"] │ a\\x1b[2Jb\\nc │' in out


def test_a_table_asked_for_that_does_not_fit_shows_the_columns_that_do_and_says_so() -> None:
    columns = [f"column_{i:02d}" for i in range(30)]
    rows: list[list[object]] = [[f"value-0-{i}" for i in range(30)], [None] * 30]
    lines = render(columns, rows, layout="table").splitlines()
    # 9 columns of 11 characters, each with its padding and border: 1 + 9 * 14 = 118 <= 120.
    assert lines == [
        "┏" + "┳".join(["━" * 11] * 9) + "┓",
        "┃" + "┃".join(f" column_{i:02d} " for i in range(9)) + "┃",
        "┡" + "╇".join(["━" * 11] * 9) + "┩",
        "│" + "│".join(f" value-0-{i} " for i in range(9)) + "│",
        "│" + "│".join([" " * 11] * 9) + "│",
        "└" + "┴".join(["─" * 11] * 9) + "┘",
        "(2 rows; 9 of 30 columns shown, the rest do not fit 120 columns: --format vertical shows them)",
    ]


def test_one_column_wider_than_the_terminal_is_folded_not_dropped() -> None:
    lines = render(["id", "note"], [["a" * 60, "b"]], width=40, layout="table").splitlines()
    assert lines[1] == "┃ id                                   ┃"
    assert lines[3:5] == ["│ " + "a" * 36 + " │", "│ " + "a" * 24 + " " * 12 + " │"]
    assert lines[6:] == ["(1 row; 1 of 2 columns shown, the rest ", "do not fit 40 columns: --format vertical",
                         "shows them)"]  # fmt: skip


def test_query_format_table_on_select_star_from_runs_in_120_columns(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from agentwatch.cli import main
    from tests.helpers.health_fixture import store_fixture

    config = tmp_path / "agentwatch.yaml"
    config.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n")
    assert store_fixture(config) == 14
    sql = "SELECT * FROM runs WHERE trace_id = '00000000000000000000000000000003'"
    result = CliRunner(env={"COLUMNS": "120"}).invoke(
        main,
        ["query", "--data-dir", str(tmp_path / "data"), "--format", "table", sql],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    # The 7th column (agent_owner: 11 characters, 14 with padding and border) would make it 122.
    assert max(len(line) for line in lines) == 108
    assert [name.strip() for name in lines[1].strip("┃").split("┃")] == [
        "trace_id", "span_id", "tenant", "agent_id", "agent_name", "agent_version",
    ]  # fmt: skip
    assert [value.strip() for value in lines[3].strip("│").split("│")] == [
        "00000000000000000000000000000003", "0000000000000004", "default", "expense-bot", "", "",
    ]  # fmt: skip
    assert lines[4:] == [
        "└" + "┴".join("─" * (width + 2) for width in (32, 16, 7, 11, 10, 13)) + "┘",
        "(1 row; 6 of 37 columns shown, the rest do not fit 120 columns: --format vertical shows them)",
    ]
