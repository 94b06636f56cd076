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

import itertools
import json
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fbstampli.cli.text import clean
from fbstampli.errors import ConfigError, TemporaryError
from fbstampli.options import Options
from fbstampli.paths import out_of_room
from fbstampli.report import RunReport


def csv_safe(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: strings get the formula guard, numbers stay."""
    from fbstampli.stampli.render import neutralise_formula

    return neutralise_formula(value) if isinstance(value, str) else value


def write_csv(out: Any, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """The one CSV writer of reports: header, then each row through the formula guard."""
    import csv

    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: csv_safe(v) for k, v in row.items()} for row in rows)


# `--color`: "auto" (colour on a terminal unless NO_COLOR is set), "always" or "never".
_color: list[str] = ["auto"]


def use_color(mode: str, *, no_color_env: bool) -> None:
    _color[:] = ["never" if mode == "auto" and no_color_env else mode]


def console(*, stderr: bool = False) -> Any:
    """A rich Console that colours as `--color` and NO_COLOR say (https://no-color.org)."""
    from rich.console import Console

    mode = _color[0]
    if mode == "never":
        return Console(stderr=stderr, no_color=True, highlight=False)
    if mode == "always":
        return Console(stderr=stderr, force_terminal=True)
    return Console(stderr=stderr)


# `--business NAME` of this run: the hints it prints (`fbstampli auth sftp`) keep it.
_business: list[str] = []


def hints_for_business(name: str | None, *, installation: Path | None = None) -> None:
    """Remember `--business NAME` (and an `--installation DIR` given) for this run's hints."""
    words = f"--business {name}" if name else ""
    if words and installation is not None:
        words = f"--installation {installation} {words}"  # the hint must find it again
    _business[:] = [words] if words else []


def keep_business(text: str) -> str:
    """`fbstampli X` hints as `fbstampli --business NAME X` when the run named a business."""
    if not _business:
        return text
    unnamed = r"`fbstampli (?!--business |--installation )"
    return re.sub(unnamed, f"`fbstampli {_business[0]} ", text)


def problem_line(text: str) -> None:
    """One `fbstampli: …` line on stderr; it may quote a remote name, so it is cleaned."""
    sys.stderr.write(f"fbstampli: {clean(keep_business(text))}\n")


def write_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A rich table on a terminal; tab-separated text when piped."""
    if stdout_is_terminal():
        from rich.table import Table
        from rich.text import Text

        rich_table = Table(title=Text(clean(title)), title_justify="left")
        for column in columns:
            rich_table.add_column(Text(clean(column)))
        for row in rows:
            rich_table.add_row(*(Text(clean(cell)) for cell in row))  # Text: never markup
        console().print(rich_table)
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
    if options.quiet:  # the same sentences on a terminal, in a pipe, in a log: only -q silences
        return
    from fbstampli.summaries import sentences

    sys.stdout.write(clean(keep_business(" ".join(sentences(report)))) + "\n")
    for note in report.notes:
        sys.stdout.write(f"  {clean(keep_business(note))}\n")


KIND_LABELS = {"bills": "bills", "bill_vendors": "vendors", "bill_payments": "payments"}


class Stages:
    """The progress bars of one command: one per stage, with counts (and an ETA) where the
    total is known: "Reading bills 23,400/60,000"."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._tasks: dict[str, Any] = {}
        self._current: Any = None
        # `page` is called from the thread that reads a listing ahead (`sync.prefetch`),
        # `stage` from the command's own: rich's bar is thread-safe, this bookkeeping is not.
        self._lock = threading.RLock()

    def _finish_current(self) -> None:
        if self._current is not None:
            task = next((t for t in self._bar.tasks if t.id == self._current), None)
            total = getattr(task, "total", None)
            self._bar.update(self._current, total=total or 1, completed=total or 1)
            self._current = None

    def page(self, progress: Any) -> None:
        with self._lock:
            self._page(progress)

    def _page(self, progress: Any) -> None:
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
        with self._lock:
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
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True, console=console(stderr=True)) as bar:
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
    sys.stdout.write(f"==> {clean(text)}\n")
    sys.stdout.flush()


def banner_line(text: str) -> None:
    """One line of a long-running command's banner, flushed so a pipe sees it at once."""
    sys.stdout.write(f"{clean(text)}\n")
    sys.stdout.flush()


def demo_note(text: str) -> None:
    sys.stdout.write(f"    {clean(text)}\n")


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
    return clean(line)


def show_check(check: Any) -> None:
    """One check, printed and flushed as soon as it is known."""
    sys.stdout.write(check_line(check) + "\n")
    sys.stdout.flush()


def show_audit(rows: list[dict[str, Any]], output_format: str) -> None:
    columns = ["at", "kind", "fb_id", "action", "detail", "run_id"]
    if output_format == "json":
        write_json(rows)
    elif output_format == "csv":
        write_csv(sys.stdout, columns, rows)
    else:
        table("audit trail", columns, [[row.get(c) for c in columns] for row in rows])


RECONCILE_COLUMNS = ["fb_bill_id", "stampli_invoice_id", "outcome", "detail"]


TERMINAL_ROWS = 200


def show_reconciliation(
    report: RunReport,
    rows: Iterator[Mapping[str, Any]],
    options: Options,
    output_format: str,
    output_file: Path | None,
) -> None:
    """The reconciliation as a table (terminal), CSV or JSON, to stdout or a file.

    Written row by row as the store yields them: a report of 250,000 bills is
    never held whole. On a terminal only the bills that need attention are
    listed (all of them with --verbose).
    """
    for problem in report.problems:
        problem_line(problem)
    if output_format == "table" and output_file is None:
        if options.quiet:
            return
        from fbstampli.sync.matching import Outcome

        shown = (
            rows if options.verbose else (r for r in rows if Outcome(r["outcome"]).needs_attention)
        )
        # A terminal gets the first screenfuls; a pipe gets every row, a line at a time.
        if not stdout_is_terminal():
            table("reconciliation", RECONCILE_COLUMNS, [])  # the header line
            _write_reconciliation(sys.stdout, report, shown, "tsv")
        else:
            listed = [
                [r[c] for c in RECONCILE_COLUMNS] for r in itertools.islice(shown, TERMINAL_ROWS)
            ]
            table("reconciliation", RECONCILE_COLUMNS, listed)
        more = sum(1 for _ in shown)
        if more:
            sys.stdout.write(
                f"and {more:,} more: `fbstampli reconcile --format csv --output reconcile.csv` "
                "lists every bill\n"
            )
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
        sys.stdout.write(f"reconcile: {counts or 'nothing to reconcile'}\n")
        for note in report.notes:
            sys.stdout.write(f"  {clean(note)}\n")
        return
    if output_file is None:
        _write_reconciliation(sys.stdout, report, rows, output_format)
        return
    import io

    from fbstampli.atomic import atomic_writer

    try:
        with atomic_writer(output_file) as handle:
            text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
            _write_reconciliation(text, report, rows, output_format)
            text.flush()
            text.detach()
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


def _write_reconciliation(
    out: Any, report: RunReport, rows: Iterator[Mapping[str, Any]], output_format: str
) -> None:
    """JSON (one item per line), CSV or tab-separated text, a row at a time."""
    if output_format == "json":
        head = {"counts": dict(sorted(report.counts.items())), "notes": report.notes}
        out.write(json.dumps(head, sort_keys=True)[:-1] + ', "items": [')
        for index, row in enumerate(rows):
            out.write(("," if index else "") + "\n  " + json.dumps(dict(row), sort_keys=True))
        out.write("\n]}\n")
    elif output_format == "csv":
        write_csv(out, RECONCILE_COLUMNS, rows)
    else:
        for row in rows:
            out.write("\t".join(clean(row[c]) for c in RECONCILE_COLUMNS) + "\n")


# ---- several businesses (`business add`, `sync --all`, `status --all`) --------------------------


def show_steps(report: RunReport, options: Options, *, as_json: bool = False) -> None:
    """A set-up report whose notes are the next steps: shown even when piped (not with -q)."""
    if as_json:
        write_json(report.as_dict())
        return
    for problem in report.problems:
        problem_line(problem)
    if options.quiet:
        return
    for note in report.notes:
        sys.stdout.write(f"{clean(keep_business(note))}\n")


def show_all(result: Any, options: Options, *, as_json: bool = False) -> None:
    """One line on stderr per failing business (what cron mails); a line per business that
    went well on a terminal or with -v; the whole per-business document with --json."""
    from fbstampli.summaries import sentences

    if as_json:
        write_json(result.as_dict())
    for outcome in result.failing:
        problem_line(outcome.line())
    if as_json or options.quiet:  # the same lines piped as on a terminal: only -q silences
        return
    for outcome in result.outcomes:
        if outcome.exit_code == 0 and outcome.report is not None:
            said = " ".join(sentences(outcome.report))
            sys.stdout.write(clean(f"business {outcome.name}: {said}") + "\n")


def show_status_all(summaries: list[dict[str, Any]], *, as_json: bool) -> None:
    """`status --all`: one row per business, or every business's full document with --json."""
    if as_json:
        write_json({"schema": 1, "businesses": summaries})
        return
    from datetime import datetime

    from fbstampli.cli.status_view import local_time

    now = datetime.now().astimezone()
    rows = []
    for summary in summaries:
        last = summary["last_run"]
        started = local_time(last["started_at"], now) if last else ""
        when = f"{last['command']} {started} exit {last['exit_code']}" if last else ""
        attention = "; ".join(summary["needs_attention"]) or "no"
        rows.append(
            [summary["business"], summary["bills_in_stampli"], summary["failing"], when, attention]
        )
    columns = ["business", "bills in Stampli", "failing", "last run", "needs attention"]
    from fbstampli.services.admin import zone_name

    table(f"fbstampli status --all (times are local: {zone_name(now)})", columns, rows)
