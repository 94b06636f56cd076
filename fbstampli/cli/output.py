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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fbstampli.cli.text import clean
from fbstampli.errors import ConfigError, TemporaryError
from fbstampli.options import Options
from fbstampli.paths import out_of_room
from fbstampli.reconcile_rows import COLUMNS as REPORT_COLUMNS
from fbstampli.reconcile_rows import TERMINAL_COLUMNS
from fbstampli.report import RunReport
from fbstampli.services.report_rows import csv_safe, needs_attention

if TYPE_CHECKING:
    from fbstampli.services.business import BusinessStatus
    from fbstampli.services.status import Status


def tsv_cell(value: Any) -> str:
    """A tab-separated cell: the formula guard, then every control character (tab, CR, LF,
    ESC...) escaped, so a cell can neither start a formula, a column nor a row."""
    return clean(csv_safe(value))


def write_csv(out: Any, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """The one CSV writer of reports: header, then each row through the formula guard.

    Rows end in CRLF (RFC 4180), so a cell holding a bare CR or LF is quoted and
    cannot start a row of its own in a spreadsheet. On a terminal every cell is
    also cleaned: Stampli data must not retitle the screen.
    """
    import csv

    terminal = getattr(out, "isatty", lambda: False)()
    cell = (lambda v: clean(csv_safe(v))) if terminal else csv_safe
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({k: cell(v) for k, v in row.items()} for row in rows)


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


def _json_value(value: Any) -> Any:
    """A value JSON has no type for: a time as ISO 8601 UTC (as every JSON time), else text."""
    from datetime import datetime

    from fbstampli.clock import to_utc_text

    return to_utc_text(value) if isinstance(value, datetime) else str(value)


def write_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=_json_value) + "\n")


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    whole: Sequence[str] = (),
    *,
    one_line: bool = False,
) -> None:
    """A rich table on a terminal (long cells wrap, never cut; the `whole` columns, names such
    as an outcome, never even wrap; with `one_line` a row never wraps, a long cell is cut with
    an ellipsis, for lists of hundreds); tab-separated text when piped."""
    if stdout_is_terminal():
        from rich.table import Table
        from rich.text import Text

        rich_table = Table(title=Text(clean(title)), title_justify="left")
        for index, column in enumerate(columns):
            if column in whole:
                widest = max((len(clean(row[index])) for row in rows), default=0)
                rich_table.add_column(
                    Text(clean(column)), no_wrap=True, min_width=max(widest, len(column))
                )
            else:
                rich_table.add_column(
                    Text(clean(column)),
                    no_wrap=one_line,
                    overflow="ellipsis" if one_line else "fold",
                )
        for row in rows:
            rich_table.add_row(*(Text(clean(cell)) for cell in row))  # Text: never markup
        console().print(rich_table)
        return
    sys.stdout.write("\t".join(clean(column) for column in columns) + "\n")
    for row in rows:
        sys.stdout.write("\t".join(tsv_cell(cell) for cell in row) + "\n")


def show_report(report: RunReport, options: Options, *, as_json: bool = False) -> None:
    if as_json:
        write_json(report.as_dict())
        return
    for problem in report.problems:
        if not (options.quiet and problem in report.silenced):
            problem_line(problem)
    if options.quiet:  # the same sentences on a terminal, in a pipe, in a log: only -q silences
        return
    from fbstampli.summaries import sentences

    sys.stdout.write(clean(keep_business(" ".join(sentences(report)))) + "\n")
    for note in report.notes:
        sys.stdout.write(f"  {clean(keep_business(note))}\n")


def show_mapping(title: str, data: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        write_json(data)
        return
    from fbstampli.clock import local_text

    timed = [k for k, v in data.items() if k.endswith("_at") and v and isinstance(v, str)]
    table(title, ["", ""], list({**data, **{k: local_text(data[k]) for k in timed}}.items()))


def show_rows(title: str, rows: Sequence[Any], *, as_json: bool) -> None:
    """Services' row dataclasses as a table, or as a JSON list of objects (fields in order)."""
    import dataclasses

    documents = [dataclasses.asdict(row) for row in rows]
    if as_json:
        write_json(documents)
        return
    columns = list(documents[0]) if documents else []
    table(title, columns, [[row.get(column) for column in columns] for row in documents])


def demo_step(text: str) -> None:
    sys.stdout.write(f"==> {clean(text)}\n")
    sys.stdout.flush()


def banner_line(text: str) -> None:
    """One line of a long-running command's banner, flushed so a pipe sees it at once."""
    sys.stdout.write(f"{clean(text)}\n")
    sys.stdout.flush()


def demo_note(text: str) -> None:
    sys.stdout.write(f"    {clean(text)}\n")


def show_status(status: "Status", *, as_json: bool, stuck: bool = False) -> None:
    """Status as JSON (stable, versioned) or as the one-screen summary of `cli/status_view.py`,
    both drawn from the same document."""
    document = status.to_json()
    if as_json:
        write_json(document)
        return
    from fbstampli.cli.status_view import status_lines, stuck_lines

    lines = stuck_lines(document) if stuck else status_lines(document)
    sys.stdout.write("".join(f"{line}\n" for line in lines))


def check_document(c: Any) -> dict[str, Any]:
    """One check as `doctor --json` gives it."""
    return {
        "name": c.name,
        "ok": c.ok,
        "skipped": getattr(c, "skipped", False),
        "detail": c.detail,
        "fix": "" if c.ok else c.fix,  # an ok check needs no fix
    }


def show_checks(checks: Sequence[Any], *, as_json: bool) -> None:
    if as_json:
        write_json([check_document(c) for c in checks])
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
        from fbstampli.clock import local_text

        local = [{**row, "at": local_text(row["at"]) if row.get("at") else ""} for row in rows]
        table("audit trail", columns, [[row.get(c) for c in columns] for row in local])


RECONCILE_COLUMNS = REPORT_COLUMNS  # the report's data columns, in every format
TERMINAL_HEADERS = {
    "invoice_number": "invoice",
    "bill_total": "total",
    "paid_in_freshbooks": "FB paid",
    "paid_in_stampli": "Stampli paid",
}


TERMINAL_ROWS = 200
SUFFIX_FORMATS = {".csv": "csv", ".json": "json"}


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
        if not options.quiet:
            _reconciliation_on_screen(report, rows, options)
        return
    if output_file is None:
        _write_reconciliation(sys.stdout, report, rows, output_format)
        return
    _reconciliation_to_file(report, rows, output_format, output_file)


def _reconciliation_on_screen(
    report: RunReport, rows: Iterator[Mapping[str, Any]], options: Options
) -> None:
    shown = rows if options.verbose else (r for r in rows if needs_attention(r))
    # A terminal gets the first screenfuls; a pipe gets every row, a line at a time, and
    # only rows: what is said about them goes to stderr, out of the data.
    said = sys.stdout
    if not stdout_is_terminal():
        table("reconciliation", RECONCILE_COLUMNS, [])  # the header line
        _write_reconciliation(sys.stdout, report, shown, "tsv")
        said = sys.stderr
    else:
        listed = [[r[c] for c in TERMINAL_COLUMNS] for r in itertools.islice(shown, TERMINAL_ROWS)]
        headers = [TERMINAL_HEADERS.get(column, column) for column in TERMINAL_COLUMNS]
        table("reconciliation", headers, listed, whole=("outcome",))
    more = sum(1 for _ in shown)
    if more:
        said.write(
            f"and {more:,} more: `fbstampli reconcile --format csv --output reconcile.csv` "
            "lists every bill\n"
        )
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.counts.items()))
    said.write(f"reconcile: {counts or 'nothing to reconcile'}\n")
    for note in report.notes:
        said.write(f"  {clean(note)}\n")


def _reconciliation_to_file(
    report: RunReport, rows: Iterator[Mapping[str, Any]], output_format: str, output_file: Path
) -> None:
    if output_format == "table":  # no --format: the file's suffix says, else tab-separated
        output_format = SUFFIX_FORMATS.get(output_file.suffix.lower(), "tsv")
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
            out.write("\t".join(tsv_cell(row[c]) for c in RECONCILE_COLUMNS) + "\n")


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
    """One line on stderr per failing business (what cron mails; under -q not for a transient
    condition younger than its `monitoring.quiet_transient_hours`); a line per business that
    went well on a terminal or with -v; the whole per-business document with --json."""
    from fbstampli.summaries import sentences

    if as_json:
        write_json(result.as_dict())
    for outcome in result.failing:
        if not (options.quiet and getattr(outcome, "young_transient", False)):
            problem_line(outcome.line())  # under -q, a young transient one is only logged
    if as_json or options.quiet:  # the same lines piped as on a terminal: only -q silences
        return
    for outcome in result.outcomes:
        if outcome.exit_code == 0 and outcome.report is not None:
            said = " ".join(sentences(outcome.report))
            sys.stdout.write(clean(f"business {outcome.name}: {said}") + "\n")


def show_status_all(summaries: Sequence["BusinessStatus"], *, as_json: bool) -> None:
    """`status --all`: one row per business, or every business's full document with --json."""
    if as_json:
        write_json({"schema": 1, "businesses": [summary.to_json() for summary in summaries]})
        return
    from datetime import datetime

    from fbstampli.cli.status_view import local_time

    now = datetime.now().astimezone()
    rows = []
    for summary in summaries:
        last = summary.last_run
        started = local_time(last["started_at"], now) if last else ""
        when = f"{last['command']} {started} exit {last['exit_code']}" if last else ""
        attention = "; ".join(summary.needs_attention) or "no"
        rows.append([summary.business, summary.bills_in_stampli, summary.failing, when, attention])
    columns = ["business", "bills in Stampli", "failing", "last run", "needs attention"]
    from fbstampli.services.status import zone_name

    table(
        f"fbstampli status --all (times are local: {zone_name(now)})", columns, rows, one_line=True
    )
