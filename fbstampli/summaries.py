"""What a command did, said as a sentence or two, with the next step where there is one.

The counters stay in `--json` and the run record; people read these instead:
"Sent 3 files to Stampli: 8 vendors, 40 bills, 13 payments." Pure (a report
in, sentences out), so the terminal and the log file say the same thing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from fbstampli.report import RunReport

# The kinds in the order they are sent, with the words people use for them.
KINDS = (
    ("expense_category", "expense category", "expense categories"),
    ("tax", "tax", "taxes"),
    ("vendor", "vendor", "vendors"),
    ("bill", "bill", "bills"),
    ("bill_payment", "payment", "payments"),
)


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _by_kind(counts: Mapping[str, int], prefix: str) -> str:
    parts = [
        plural(counts.get(f"{prefix}.{kind}", 0), one, many)
        for kind, one, many in KINDS
        if counts.get(f"{prefix}.{kind}", 0)
    ]
    return ", ".join(parts)


def _files(counts: Mapping[str, int]) -> int:
    return sum(counts.get(f"files.{kind}", 0) for kind, _, _ in KINDS)


def push_sentences(counts: Mapping[str, int], *, dry_run: bool = False) -> list[str]:
    files = _files(counts)
    said: list[str] = []
    if dry_run:
        what = _by_kind(counts, "queued")
        if files:
            said.append(
                f"Would send {plural(files, 'file')} to Stampli" + f": {what}." * bool(what)
            )
        else:
            said.append("Nothing new in FreshBooks; no file would be sent.")
        return said
    if files:
        what = _by_kind(counts, "sent")
        said.append(f"Sent {plural(files, 'file')} to Stampli" + (f": {what}." if what else "."))
    elif not (counts.get("failed") or counts.get("dead")):
        said.append("Nothing new in FreshBooks to send.")
    failed, dead = counts.get("failed", 0), counts.get("dead", 0)
    if failed:
        said.append(
            f"{plural(failed, 'item')} could not be sent and will be tried again "
            "(`fbstampli status` says when)."
        )
    if dead:
        said.append(
            f"{plural(dead, 'item')} used up every try: `fbstampli retry --dead` once the "
            "cause is fixed."
        )
    if counts.get("deleted"):
        # Bills, vendors and bill payments alike (the notes name each): not all are bills.
        deleted = plural(counts["deleted"], "object")
        said.append(f"{deleted} deleted in FreshBooks (in the audit).")
    return said


def pull_sentences(counts: Mapping[str, int]) -> list[str]:
    if counts.get("not_due"):  # it did not look: "no new exports" would claim it had
        return [
            "Did not look for new Stampli exports: not due yet (pull.interval_minutes); "
            "`fbstampli pull-stampli --now` looks at once."
        ]
    files, quarantined = counts.get("files", 0), counts.get("quarantined", 0)
    said: list[str] = []
    if files:
        records = plural(counts.get("records", 0), "record")
        said.append(f"Read {plural(files, 'Stampli export')} ({records}).")
    elif not quarantined:
        said.append("No new Stampli exports.")
    if quarantined:
        said.append(
            f"Quarantined {plural(quarantined, 'export file')} that could not be read: "
            "`fbstampli status --stuck` says why and where the copy is."
        )
    return said


def reconcile_sentences(counts: Mapping[str, int]) -> list[str]:
    from fbstampli.models.outcome import Outcome

    total = sum(counts.get(outcome.value, 0) for outcome in Outcome)
    if not total:
        return ["Nothing to reconcile yet."]
    attention = sum(counts.get(o.value, 0) for o in Outcome if o.needs_attention)
    settled = "".join(
        f", {counts[name]:,} {name}"
        for name in ("history", "acknowledged", "voided")
        if counts.get(name)
    )
    sentence = (
        f"Reconciled {plural(total, 'bill')}: {counts.get('matched', 0):,} matched, "
        f"{counts.get('in_progress', 0):,} in progress{settled}, {attention:,} need attention"
    )
    return [sentence + (" (`fbstampli reconcile`)." if attention else ".")]


def _part(counts: Mapping[str, int], command: str) -> dict[str, int]:
    prefix = f"{command}."
    return {name[len(prefix) :]: n for name, n in counts.items() if name.startswith(prefix)}


def sync_sentences(counts: Mapping[str, int]) -> list[str]:
    return [
        *push_sentences(_part(counts, "push-bills")),
        *pull_sentences(_part(counts, "pull-stampli")),
        *reconcile_sentences(_part(counts, "reconcile")),
    ]


def retry_sentences(counts: Mapping[str, int]) -> list[str]:
    requeued = counts.get("requeued", 0)
    if not requeued:
        return ["Nothing was re-queued."]
    said = [f"Re-queued {plural(requeued, 'delivery', 'deliveries')}."]
    if _files(counts) or counts.get("failed") or counts.get("dead"):
        said += push_sentences(counts)
    return said


BY_COMMAND: dict[str, Callable[[Mapping[str, int]], list[str]]] = {
    "push-bills": push_sentences,
    "pull-stampli": pull_sentences,
    "reconcile": reconcile_sentences,
    "sync": sync_sentences,
    "retry": retry_sentences,
}


def sentences(report: RunReport) -> list[str]:
    """The report as sentences: the ones its command set, else ones made from its counts."""
    if report.summary:
        return list(report.summary)
    made = BY_COMMAND.get(report.command)
    if made is not None:
        dry_run = any(note.startswith("dry run:") for note in report.notes)
        if report.command == "push-bills" and dry_run:
            return push_sentences(report.counts, dry_run=True)
        return made(report.counts)
    counts = ", ".join(f"{name} {n}" for name, n in sorted(report.counts.items()) if n)
    return [f"{report.command}: {counts or 'done'}."]
