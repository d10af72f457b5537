"""`dcsim validate` reports every table with its mean and worst error and the costs used."""

from __future__ import annotations

import io

from rich.console import Console

from dcsim.app.validate import ValidationRow, ValidationTable, bundled_validation_dir, nccl_tables, render


def test_a_table_reports_mean_worst_and_costs() -> None:
    t = ValidationTable("T", "src", "a100-sxm-80gb, 65-95% of compute time measured or fitted",
                        [ValidationRow("a", 100.0, 104.0, "x"), ValidationRow("b", 100.0, 90.0, "x")])
    assert t.mean_abs_error_pct == 7.0 and t.max_abs_error_pct == 10.0
    d = t.to_dict()
    assert d["costs"].startswith("a100-sxm-80gb") and d["rows"][1]["error_pct"] == -10.0
    buf = io.StringIO()
    render([t], Console(file=buf, width=120))
    text = buf.getvalue()
    assert "mean |error| 7.0%, worst 10.0% (2 rows)" in text and "costs: a100-sxm-80gb" in text


def test_the_nccl_tables_come_with_their_costs() -> None:
    tables = nccl_tables(bundled_validation_dir())
    assert len(tables) == 2 and all(t.rows and "network model" in t.costs for t in tables)
