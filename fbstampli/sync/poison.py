"""Poison records: one object that cannot be written into a Stampli file is held, not the queue.

A file is rendered whole; only when that fails is each member rendered alone,
and the ones that fail are held (`store.held`) with a reason naming them (kind,
name, FreshBooks id, column, the character), so the rest of the file, the rest
of the queue, the pull and reconcile go on. Every run tries a held object again
(a template fixed in between sends it), and so does `retry --bill/--vendor`.
"""

from __future__ import annotations

from collections.abc import Sequence

from fbstampli.errors import RenderError
from fbstampli.models import Kind
from fbstampli.report import RunReport
from fbstampli.store import Store, held
from fbstampli.sync.batch import Pending, PlannedFile
from fbstampli.sync.ports import Renderer

KIND_NAMES = {
    Kind.CATEGORY: "expense category",
    Kind.TAX: "tax",
    Kind.VENDOR: "vendor",
    Kind.BILL: "bill",
    Kind.PAYMENT: "bill payment",
}
# The problem lines a run names before pointing at `status --stuck`.
FIRST_FEW = 3


def _option(kind: Kind, fb_id: int) -> str:
    if kind in (Kind.PAYMENT, Kind.CATEGORY, Kind.TAX):
        return "`fbstampli status --stuck`"
    return f"`fbstampli retry --{'vendor' if kind is Kind.VENDOR else 'bill'} {fb_id}`"


def named(kind: Kind, fb_id: int, label: str) -> str:
    """`vendor "Kyōto 京都" (FreshBooks id 7)`."""
    return (
        f'{KIND_NAMES[kind]} "{label}" (FreshBooks id {fb_id})'
        if label
        else (f"{KIND_NAMES[kind]} (FreshBooks id {fb_id})")
    )


def render_or_hold(
    store: Store,
    renderer: Renderer,
    kind: Kind,
    planned: PlannedFile,
    problems: list[str],
) -> tuple[bytes, tuple[Pending, ...]] | None:
    """The file's bytes and the members in it; members that cannot be written are held
    (committed) and named in `problems`. None when no member is left."""
    try:
        return renderer.file_bytes(kind, planned.rows), planned.members
    except RenderError:
        pass
    good: list[Pending] = []
    bad: list[tuple[Pending, RenderError]] = []
    for member in planned.members:
        try:
            renderer.file_bytes(kind, member.rows)
        except RenderError as error:
            bad.append((member, error))
        else:
            good.append(member)
    names = held.labels(store, kind, (member.fb_id for member, _ in bad))
    reasons = [
        (
            member.delivery_id,
            f"{named(kind, member.fb_id, names.get(member.fb_id, ''))} cannot be written: "
            f"{error}; fix the template (`fbstampli template check`) or the record in "
            f"FreshBooks, then the next run sends it, or {_option(kind, member.fb_id)}",
        )
        for member, error in bad
    ]
    with store.transaction():
        held.hold(store, reasons)
    problems.extend(reason for _, reason in reasons)
    if not good:
        return None
    rows = [row for member in good for row in member.rows]
    return renderer.file_bytes(kind, rows), tuple(good)


def hold_behind(store: Store, kind: Kind, problems: list[str]) -> None:
    """Hold the pending deliveries of `kind` whose vendor (or bill) is held and not in Stampli."""
    behind = held.behind_held(store, kind)
    if not behind:
        return
    parent_kind = held.PARENT[kind][0]
    reasons = [
        (
            item.delivery_id,
            f"held behind {named(parent_kind, item.parent_id, item.parent_label)}, "
            "which cannot be written yet; it goes once that one does",
        )
        for item in behind
    ]
    with store.transaction():
        held.hold(store, reasons)
    problems.append(
        f"{len(behind)} {KIND_NAMES[kind]}(s) held behind a {KIND_NAMES[parent_kind]} that "
        "cannot be written: `fbstampli status --stuck`"
    )


def report_held(report: RunReport, problems: Sequence[str]) -> None:
    """A few lines for the run's end (cron's mail); the rest are in `status --stuck`."""
    if not problems:
        return
    report.problems.extend(problems[:FIRST_FEW])
    if len(problems) > FIRST_FEW:
        report.problems.append(
            f"and {len(problems) - FIRST_FEW} more held: `fbstampli status --stuck`"
        )
