"""The only printer: reports, tables and JSON on stdout, one-line problems on stderr.

Success under cron prints nothing: a report is shown on a terminal, with
`--json`, or with `-v`; never with `-q`. Progress bars appear only on a
terminal and never with `--json` or `-q`.
"""

import contextlib
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


def write_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on a terminal; tab-separated text when piped."""
    if stdout_is_terminal():
        from rich.console import Console
        from rich.table import Table

        rich_table = Table(title=title, title_justify="left")
        for column in columns:
            rich_table.add_column(column)
        for row in rows:
            rich_table.add_row(*("" if cell is None else str(cell) for cell in row))
        Console().print(rich_table)
        return
    sys.stdout.write("\t".join(columns) + "\n")
    for row in rows:
        sys.stdout.write("\t".join("" if cell is None else str(cell) for cell in row) + "\n")


def show_report(report: RunReport, options: Options, *, as_json: bool = False) -> None:
    if as_json:
        write_json(report.as_dict())
        return
    for problem in report.problems:
        sys.stderr.write(f"fbstampli: {problem}\n")
    if options.quiet or not (stdout_is_terminal() or options.verbose):
        return
    from fbstampli.summaries import sentences

    sys.stdout.write(" ".join(sentences(report)) + "\n")
    for note in report.notes:
        sys.stdout.write(f"  {note}\n")


KIND_LABELS = {"bills": "bills", "bill_vendors": "vendors", "bill_payments": "payments"}


class Stages:
    """The progress bars of one command: one per stage, with counts (and an ETA) where the
    total is known: "Reading bills 23,400/60,000"."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._tasks: dict[str, Any] = {}
        self._current: Any = None

    def _finish_current(self) -> None:
        if self._current is not None:
            task = next((t for t in self._bar.tasks if t.id == self._current), None)
            total = getattr(task, "total", None)
            self._bar.update(self._current, total=total or 1, completed=total or 1)
            self._current = None

    def page(self, progress: Any) -> None:
        label = f"Reading {KIND_LABELS.get(progress.kind, progress.kind)}"
        task = self._tasks.get(label)
        if task is None:
            self._finish_current()
            task = self._bar.add_task(label, total=progress.total)
            self._tasks[label] = task
        self._current = task
        total = progress.total
        done = progress.page * 100 if total is None else min(progress.page * 100, total)
        counts = f" {done:,}/{total:,}" if total is not None else f" {done:,}"
        self._bar.update(task, description=label + counts, completed=done, total=total)

    def stage(self, label: str, total: int | None = None) -> Any:
        self._finish_current()
        if not label:
            return lambda amount=1: None
        task = self._bar.add_task(label, total=total)
        self._current = task
        done = [0]

        def advance(amount: int = 1) -> None:
            done[0] += amount
            counts = f" {done[0]:,}/{total:,}" if total is not None else f": {done[0]:,} done"
            self._bar.update(task, description=label + counts, advance=amount)

        return advance


def shows_progress(options: Options) -> bool:
    """Bars only where someone watches: both streams a terminal, and not -q."""
    return not options.quiet and sys.stderr.isatty() and sys.stdout.isatty()


@contextmanager
def stages(options: Options, *, enabled: bool = True) -> Iterator[Any]:
    """A `Progress` (fbstampli/progress.py) on a terminal; one that shows nothing elsewhere."""
    from fbstampli.progress import NoProgress

    if not enabled or not shows_progress(options):
        yield NoProgress()
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True, console=Console(stderr=True)) as bar:
        yield Stages(bar)


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
    sys.stdout.write(f"==> {text}\n")
    sys.stdout.flush()


def banner_line(text: str) -> None:
    """One line of a long-running command's banner, flushed so a pipe sees it at once."""
    sys.stdout.write(f"{text}\n")
    sys.stdout.flush()


def demo_note(text: str) -> None:
    sys.stdout.write(f"    {text}\n")


def show_status(document: dict[str, Any], *, as_json: bool, stuck: bool = False) -> None:
    """Status as JSON (stable, versioned) or as the one-screen summary of `cli/status_view.py`."""
    if as_json:
        write_json(document)
        return
    from fbstampli.cli.status_view import status_lines, stuck_lines

    lines = stuck_lines(document) if stuck else status_lines(document)
    sys.stdout.write("".join(f"{line}\n" for line in lines))


def show_checks(checks: Sequence[Any], *, as_json: bool) -> None:
    if as_json:
        write_json(
            [
                {
                    "name": c.name,
                    "ok": c.ok,
                    "skipped": getattr(c, "skipped", False),
                    "detail": c.detail,
                    "fix": "" if c.ok else c.fix,  # an ok check needs no fix
                }
                for c in checks
            ]
        )
        return
    for check in checks:
        show_check(check)


def check_line(check: Any) -> str:
    """`ok`, `skip` or `FAIL`, the check, what it found, and a fix it does not already say."""
    skipped = getattr(check, "skipped", False)
    mark = "skip" if skipped else "ok  " if check.ok else "FAIL"
    line = f"{mark} {check.name}: {check.detail}"
    commands = re.findall(r"`[^`]+`", check.fix or "")
    said = any(command in check.detail for command in commands)
    if not check.ok and check.fix and not said:
        line += f" -> {check.fix}"
    return line


def show_check(check: Any) -> None:
    """One check, printed and flushed as soon as it is known."""
    sys.stdout.write(check_line(check) + "\n")
    sys.stdout.flush()


def show_audit(rows: list[dict[str, Any]], output_format: str) -> None:
    columns = ["at", "kind", "fb_id", "action", "detail", "run_id"]
    if output_format == "json":
        write_json(rows)
    elif output_format == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        table("audit trail", columns, [[row.get(c) for c in columns] for row in rows])


RECONCILE_COLUMNS = ["fb_bill_id", "stampli_invoice_id", "outcome", "detail"]


def show_reconciliation(
    report: RunReport, options: Options, output_format: str, output_file: Path | None
) -> None:
    """The reconciliation as a table (terminal), CSV or JSON, to stdout or a file."""
    import csv
    import io

    for problem in report.problems:
        sys.stderr.write(f"fbstampli: {problem}\n")
    rows = report.items
    if output_format == "json":
        text = json.dumps({"counts": report.counts, "items": rows}, indent=2, sort_keys=True) + "\n"
    elif output_format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=RECONCILE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
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
        text = "\n".join("\t".join(str(r[c]) for c in RECONCILE_COLUMNS) for r in rows) + "\n"
    if output_file is not None:
        temporary = output_file.with_name(f".{output_file.name}.tmp")
        try:
            temporary.write_text(text, encoding="utf-8")
            temporary.replace(output_file)
        except OSError as error:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
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


def shown(value: object) -> str:
    """Text that came from outside (FreshBooks, Stampli, the SFTP server, a file), made safe to
    print as one piece of a line: every such value is printed through here.

    Control characters (a newline, an escape sequence) would let a bill number rewrite the
    screen or forge a line; they are shown as `?`.
    """
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)
