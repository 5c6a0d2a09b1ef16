"""The chargeback ledger's formats (``agentwatch cost export``): CSV and Parquet for finance's
tools, and an invoice preview per tenant in Markdown or HTML (data is always text, never markup)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from report.cost import printable_cell
from report.formats import md_row, md_text
from spend.ledger import LEDGER_COLUMNS, Invoice, LedgerLine, invoices

_TYPES = {
    "calls": pa.int64(), "input_tokens": pa.int64(), "output_tokens": pa.int64(), "cached_tokens": pa.int64(),
    "cache_write_tokens": pa.int64(), "list_usd": pa.float64(), "adjustment_usd": pa.float64(),
    "net_usd": pa.float64(), "credits_usd": pa.float64(), "billed_usd": pa.float64(),
}  # fmt: skip
LEDGER_SCHEMA = pa.schema([pa.field(c, _TYPES.get(c, pa.string())) for c in LEDGER_COLUMNS])


def ledger_csv(lines: list[LedgerLine]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LEDGER_COLUMNS)
    for line in lines:
        writer.writerow([printable_cell(getattr(line, c)) for c in LEDGER_COLUMNS])
    return out.getvalue()


def write_ledger_parquet(lines: list[LedgerLine], path: Path) -> None:
    columns = {c: [getattr(line, c) for line in lines] for c in LEDGER_COLUMNS}
    pq.write_table(pa.table(columns, schema=LEDGER_SCHEMA), path)


def _usd(value: float) -> str:
    """Dollars to a hundredth of a cent (model calls cost fractions of a cent)."""
    return f"-${-value:,.4f}" if value <= -0.00005 else f"${abs(value):,.4f}"


def _invoice_rows(invoice: Invoice) -> list[list[str]]:
    rows = []
    for line in invoice.lines:
        if line.kind == "usage":
            rows.append([line.team, line.agent, line.model, f"{line.calls:,}", _usd(line.list_usd),
                         _usd(line.adjustment_usd), _usd(line.billed_usd)])  # fmt: skip
        else:
            what = "credit" + (f" ({line.note})" if line.note else "")
            rows.append([line.team, what, "", "", "", "", _usd(line.billed_usd)])
    return rows


_HEADER = ["team", "agent", "model", "calls", "list price", "discount/markup", "billed"]


def invoices_markdown(lines: list[LedgerLine], month: str) -> str:
    out = [f"# Invoice preview, {month}", ""]
    if not lines:
        out += ["No spend and no credits this month.", ""]
    for invoice in invoices(lines):
        out += [f"## {md_text(invoice.tenant)}", "", md_row(_HEADER), "|" + " --- |" * len(_HEADER)]
        out += [md_row(row) for row in _invoice_rows(invoice)]
        out += [
            "",
            f"- List price: {_usd(invoice.list_usd)}",
            f"- Discounts and markups: {_usd(invoice.adjustment_usd)}",
            f"- Credits: {_usd(-invoice.credits_usd)}",
            f"- **Total billed: {_usd(invoice.billed_usd)}**",
            "",
        ]
    return "\n".join(out)


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Invoice preview, {{ month }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 960px; color: #1d2433; }
table { border-collapse: collapse; width: 100%; margin: .6rem 0 1rem; }
td, th { padding: .3rem .6rem; border-bottom: 1px solid #d8dde6; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.total td { font-weight: 700; border-top: 2px solid #1d2433; }
section { margin-bottom: 2.5rem; }
</style></head>
<body>
<h1>Invoice preview, {{ month }}</h1>
{% if not invoices %}<p>No spend and no credits this month.</p>{% endif %}
{% for invoice in invoices %}
<section>
<h2>{{ invoice.tenant }}</h2>
<table>
<thead><tr>{% for h in header %}
  <th{% if loop.index > 3 %} class="n"{% endif %}>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows[loop.index0] %}<tr>{% for cell in row %}
  <td{% if loop.index > 3 %} class="n"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}
</tbody>
<tfoot>
<tr><td colspan="6">List price</td><td class="n">{{ usd(invoice.list_usd) }}</td></tr>
<tr><td colspan="6">Discounts and markups</td><td class="n">{{ usd(invoice.adjustment_usd) }}</td></tr>
<tr><td colspan="6">Credits</td><td class="n">{{ usd(-invoice.credits_usd) }}</td></tr>
<tr class="total"><td colspan="6">Total billed</td><td class="n">{{ usd(invoice.billed_usd) }}</td></tr>
</tfoot>
</table>
</section>
{% endfor %}
</body></html>
"""


def invoices_html(lines: list[LedgerLine], month: str) -> str:
    from jinja2 import Environment

    template = Environment(autoescape=True).from_string(_HTML)
    found = invoices(lines)
    return template.render(
        month=month, invoices=found, rows=[_invoice_rows(i) for i in found], header=_HEADER, usd=_usd
    )
