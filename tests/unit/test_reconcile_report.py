"""The reconcile report is written as the store yields it: whole to a pipe or a file,
the first screenfuls on a terminal, and every format readable back."""

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fbstampli.cli import output
from fbstampli.options import Options
from fbstampli.reconcile_rows import COLUMNS
from fbstampli.report import RunReport


def outcomes(count: int) -> Iterator[dict[str, Any]]:
    for n in range(1, count + 1):
        yield dict.fromkeys(COLUMNS, "") | {
            "fb_bill_id": n,
            "invoice_number": f"STP-{n}",
            "stampli_invoice_id": f"STP-{n}",
            "outcome": "not_captured" if n % 2 else "matched",
            "detail": '=HYPERLINK("x")' if n == 1 else "",
        }


def shown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *, terminal: bool
) -> str:
    monkeypatch.setattr(output, "stdout_is_terminal", lambda: terminal)
    report = RunReport("reconcile", counts={"not_captured": 300, "matched": 300})
    output.show_reconciliation(report, outcomes(600), Options(env={}), "table", None)
    captured = capsys.readouterr()
    if not terminal:
        assert "reconcile: matched 300, not_captured 300" in captured.err  # said apart
    return captured.out


def test_a_terminal_lists_the_first_bills_needing_attention_and_says_how_to_get_the_rest(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = shown(capsys, monkeypatch, terminal=True)
    assert f"STP-{2 * output.TERMINAL_ROWS - 1}" in text
    assert f"STP-{2 * output.TERMINAL_ROWS + 1}" not in text
    assert "and 100 more: `fbstampli reconcile --format csv --output reconcile.csv`" in text


def test_a_pipe_gets_every_bill_needing_attention_one_line_each(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = shown(capsys, monkeypatch, terminal=False).splitlines()
    assert lines[0] == "\t".join(COLUMNS)
    assert len([line for line in lines if "\tnot_captured\t" in line]) == 300
    assert "more:" not in "".join(lines)


def test_a_pipe_gets_data_rows_only_every_line_with_every_column(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = shown(capsys, monkeypatch, terminal=False).splitlines()
    assert len(lines) == 1 + 300
    assert {line.count("\t") for line in lines} == {len(COLUMNS) - 1}


def test_a_narrow_terminal_wraps_the_why_and_never_cuts_an_outcome_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setattr(output, "stdout_is_terminal", lambda: True)
    why = "FreshBooks recorded 7357.57 USD paid, but Stampli exported no payment for this bill."
    row = dict.fromkeys(COLUMNS, "") | {
        "fb_bill_id": 28,
        "invoice_number": "INV-436970",
        "vendor": "Cedar Electric Ltd.",
        "outcome": "paid_in_freshbooks_only",
        "why": why,
    }
    report = RunReport("reconcile", counts={"paid_in_freshbooks_only": 1})
    output.show_reconciliation(report, iter([row]), Options(env={}), "table", None)
    text = capsys.readouterr().out
    assert "paid_in_freshbooks_only" in text
    assert "…" not in text
    words = " ".join(
        cell.strip() for line in text.splitlines() for cell in line.split("│")[-2:-1]
    ).split()
    assert " ".join(words) == why


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_a_report_file_holds_every_bill_and_reads_back(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"report.{fmt}"
    report = RunReport("reconcile", counts={"not_captured": 300, "matched": 300})
    output.show_reconciliation(report, outcomes(600), Options(env={}), fmt, target)
    text = target.read_text(encoding="utf-8")
    if fmt == "json":
        document = json.loads(text)
        assert document["counts"] == {"matched": 300, "not_captured": 300}
        assert [item["fb_bill_id"] for item in document["items"]] == list(range(1, 601))
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
        assert len(rows) == 600
        assert rows[0]["detail"].startswith("'=")  # a formula never reaches a spreadsheet raw


@pytest.mark.parametrize(
    ("total", "paid", "left"),
    [
        ("1948.50", {"USD": "900"}, "1048.50"),  # partly paid: the balance is shown
        ("1948.50", {}, "1948.50"),
        ("100.00", {"USD": "100.00"}, "0.00"),
        ("100.00", {"EUR": "100.00"}, ""),  # another currency: not said
        (None, {"USD": "1"}, ""),
    ],
)
def test_the_open_balance_is_what_freshbooks_has_left_to_pay_in_the_bill_s_currency(
    total: str | None, paid: dict[str, str], left: str
) -> None:
    from decimal import Decimal

    from fbstampli.reconcile_rows import open_balance

    sums = {currency: Decimal(amount) for currency, amount in paid.items()}
    assert open_balance(None if total is None else Decimal(total), "USD", sums) == left
