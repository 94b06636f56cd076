"""The only printer: reports, tables and JSON on stdout, one-line problems on stderr.

Success under cron prints nothing: a report is shown on a terminal, with
`--json`, or with `-v`; never with `-q`. Progress bars appear only on a
terminal and never with `--json` or `-q`.

Much of what is shown came from outside (Stampli export fields, remote file
names, FreshBooks text), so everything printed goes through `clean` (control
characters that could retitle the terminal, plant OSC 8 links or hide text
are replaced; Rich never reads it as markup) and every CSV cell through the
same formula guard as the files we upload.
"""

import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fbstampli.errors import ConfigError, TemporaryError
from fbstampli.options import Options
from fbstampli.paths import out_of_room
from fbstampli.report import RunReport

# C0 and C1 controls, DEL, and the Unicode ones that reorder or split lines (bidi overrides,
# isolates, line/paragraph separators): none belongs in a line of ours, all can mislead.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def clean(value: Any) -> str:
    """`value` as text fit for a terminal: every control character shown as `\\xNN`/`\\uNNNN`."""
    text = "" if value is None else str(value)
    return _CONTROLS.sub(lambda m: ascii(m.group())[1:-1], text)


def csv_safe(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: strings get the formula guard, numbers stay."""
    from fbstampli.stampli.render import neutralise_formula

    return neutralise_formula(value) if isinstance(value, str) else value


def write_csv(out: Any, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """The one CSV writer of reports: header, then each row through the formula guard."""
    import csv

    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: csv_safe(v) for k, v in row.items()} for row in rows)


def problem_line(text: str) -> None:
    """One `fbstampli: …` line on stderr; it may quote a remote name, so it is cleaned."""
    sys.stderr.write(f"fbstampli: {clean(text)}\n")


def write_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on a terminal; tab-separated text when piped."""
    if stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        rich_table = Table(title=Text(clean(title)), title_justify="left")
        for column in columns:
            rich_table.add_column(Text(clean(column)))
        for row in rows:
            rich_table.add_row(*(Text(clean(cell)) for cell in row))  # Text: never markup
        Console().print(rich_table)
        return
    sys.stdout.write("\t".join(clean(column) for column in columns) + "\n")
    for row in rows:
        sys.stdout.write("\t".join(clean(cell) for cell in row) + "\n")


def show_report(report: RunReport, options: Options, *, as_json: bool = False) -> None:
    if as_json:
        write_json(report.as_dict())
        return
    for problem in report.problems:
        problem_line(problem)
    if options.quiet or not (stdout_is_terminal() or options.verbose):
        return
    counts = ", ".join(f"{name} {value}" for name, value in sorted(report.counts.items()) if value)
    sys.stdout.write(clean(f"{report.command}: {counts or 'nothing to do'}") + "\n")
    for note in report.notes:
        sys.stdout.write(f"  {clean(note)}\n")


@contextmanager
def progress(options: Options, *, enabled: bool = True) -> Iterator[Any]:
    """A callback factory `start(label, total) -> advance(n)`; a no-op off a terminal."""
    if not enabled or options.quiet or not sys.stderr.isatty():
        yield lambda label, total=None: lambda amount=1: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:

        def start(label: str, total: int | None = None) -> Any:
            task = bar.add_task(label, total=total)
            return lambda amount=1: bar.advance(task, amount)

        yield start


def show_mapping(title: str, data: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        write_json(data)
        return
    table(title, ["", ""], list(data.items()))


def show_rows(title: str, rows: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        write_json(rows)
        return
    columns = list(rows[0]) if rows else []
    table(title, columns, [[row.get(column) for column in columns] for row in rows])


def demo_step(text: str) -> None:
    sys.stdout.write(f"==> {clean(text)}\n")
    sys.stdout.flush()


def banner_line(text: str) -> None:
    """One line of a long-running command's banner, flushed so a pipe sees it at once."""
    sys.stdout.write(f"{clean(text)}\n")
    sys.stdout.flush()


def demo_note(text: str) -> None:
    sys.stdout.write(f"    {clean(text)}\n")


def show_status(document: dict[str, Any], *, as_json: bool) -> None:
    """Status as JSON (stable, versioned) or as one screen of key/value lines."""
    if as_json:
        write_json(document)
        return
    rows: list[tuple[str, Any]] = []

    def flatten(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                flatten(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list):
            rows.append((prefix, f"{len(value)}: " + "; ".join(str(item) for item in value)))
        else:
            rows.append((prefix, "" if value is None else value))

    flatten("", {k: v for k, v in document.items() if k != "schema"})
    table("fbstampli status", ["item", "value"], rows)


def show_checks(checks: Sequence[Any], *, as_json: bool) -> None:
    if as_json:
        write_json([{"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix} for c in checks])
        return
    for check in checks:
        mark = "ok  " if check.ok else "FAIL"
        line = f"{mark} {check.name}: {check.detail}"
        if not check.ok and check.fix:
            line += f" -> {check.fix}"
        sys.stdout.write(clean(line) + "\n")


def show_audit(rows: list[dict[str, Any]], output_format: str) -> None:
    columns = ["at", "kind", "fb_id", "action", "detail", "run_id"]
    if output_format == "json":
        write_json(rows)
    elif output_format == "csv":
        write_csv(sys.stdout, columns, rows)
    else:
        table("audit trail", columns, [[row.get(c) for c in columns] for row in rows])


RECONCILE_COLUMNS = ["fb_bill_id", "stampli_invoice_id", "outcome", "detail"]


def show_reconciliation(
    report: RunReport, options: Options, output_format: str, output_file: Path | None
) -> None:
    """The reconciliation as a table (terminal), CSV or JSON, to stdout or a file."""
    import io

    for problem in report.problems:
        problem_line(problem)
    rows = report.items
    if output_format == "json":
        text = json.dumps({"counts": report.counts, "items": rows}, indent=2, sort_keys=True) + "\n"
    elif output_format == "csv":
        buffer = io.StringIO()
        write_csv(buffer, RECONCILE_COLUMNS, rows)
        text = buffer.getvalue()
    else:
        if output_file is None:
            if options.quiet:
                return
            attention = [row for row in rows if row["outcome"] not in ("matched", "in_progress")]
            shown = attention if not options.verbose else rows
            table(
                "reconciliation",
                RECONCILE_COLUMNS,
                [[r[c] for c in RECONCILE_COLUMNS] for r in shown],
            )
            counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
            sys.stdout.write(f"reconcile: {counts or 'nothing to reconcile'}\n")
            return
        text = "\n".join("\t".join(clean(r[c]) for c in RECONCILE_COLUMNS) for r in rows) + "\n"
    if output_file is not None:
        from fbstampli.atomic import write_atomic

        try:
            write_atomic(output_file, text.encode("utf-8"))
        except OSError as error:
            if out_of_room(error):
                raise TemporaryError(
                    f"cannot write the report to {output_file}: the disk is full; the results "
                    "are kept: free some space and run reconcile again"
                ) from None
            raise ConfigError(
                f"cannot write the report to {output_file} ({error.strerror}); the results "
                "are kept: choose another --output and run reconcile again"
            ) from None
    else:
        sys.stdout.write(text)


# ---- several businesses (`business add`, `sync --all`, `status --all`) --------------------------


def show_steps(report: RunReport, options: Options, *, as_json: bool = False) -> None:
    """A set-up report whose notes are the next steps: shown even when piped (not with -q)."""
    if as_json:
        write_json(report.as_dict())
        return
    for problem in report.problems:
        sys.stderr.write(f"fbstampli: {problem}\n")
    if options.quiet:
        return
    for note in report.notes:
        sys.stdout.write(f"{note}\n")


def show_all(result: Any, options: Options, *, as_json: bool = False) -> None:
    """One line on stderr per failing business (what cron mails); a line per business that
    went well on a terminal or with -v; the whole per-business document with --json."""
    if as_json:
        write_json(result.as_dict())
    for outcome in result.failing:
        sys.stderr.write(f"fbstampli: {outcome.line()}\n")
    if as_json or options.quiet or not (stdout_is_terminal() or options.verbose):
        return
    for outcome in result.outcomes:
        if outcome.exit_code == 0 and outcome.report is not None:
            report = outcome.report
            counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()) if v)
            sys.stdout.write(f"business {outcome.name}: ok; {counts or 'nothing to do'}\n")


def show_status_all(summaries: list[dict[str, Any]], *, as_json: bool) -> None:
    """`status --all`: one row per business, or every business's full document with --json."""
    if as_json:
        write_json({"schema": 1, "businesses": summaries})
        return
    rows = []
    for summary in summaries:
        last = summary["last_run"]
        when = f"{last['command']} {last['started_at']} exit {last['exit_code']}" if last else ""
        attention = "; ".join(summary["needs_attention"]) or "no"
        rows.append(
            [summary["business"], summary["bills_in_stampli"], summary["failing"], when, attention]
        )
    columns = ["business", "bills in Stampli", "failing", "last run", "needs attention"]
    table("fbstampli status --all", columns, rows)
