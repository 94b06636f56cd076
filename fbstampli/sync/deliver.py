"""Deliver: batch queued deliveries into files and upload each through a journal.

Every step is committed before the side effect it announces, so a run killed
at any instant leaves a batch whose state says what may have happened, and
`advance_batch` finishes it by looking at the server:

    planned -> uploading -> part_verified -> rename_sent -> delivered

- final name present: delivered;
- rename_sent and neither name present: the consumer took it: delivered;
- .part present and part_verified or later: retry only the rename;
- .part present before part_verified: delete it, upload again, same name;
- part_verified and neither name present: stop and alert (stuck): something
  is consuming temporary files.

No step re-sends a file that may already be in Stampli under its final name,
so a delivery is never duplicated as long as Stampli ignores `.part` files.
Before a run's first upload the marker on the server is read, and after each
batch it follows the state (`sync.marker`): a new or older state sends nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fbstampli.clock import Clock, local_text
from fbstampli.config import Settings
from fbstampli.errors import RemoteError, RemoteUnavailableError
from fbstampli.models import Kind
from fbstampli.models.remote import part_name
from fbstampli.report import RunReport
from fbstampli.store import Row, Store, outbox
from fbstampli.store.deliveries import delivery_rows
from fbstampli.store.held import release_held
from fbstampli.store.outbox import (
    BatchState,
    batch_members,
    open_batches,
    outstanding_count,
    pending_deliveries,
    requeue_due,
    set_batch_state,
)
from fbstampli.sync.backoff import is_dead, next_attempt_at
from fbstampli.sync.batch import Pending, PlannedFile, iter_files
from fbstampli.sync.connection import Connection
from fbstampli.sync.documents import DocumentFolder, send_documents, tidy_documents
from fbstampli.sync.marker import MarkerGuard
from fbstampli.sync.poison import hold_behind, render_or_hold, report_held
from fbstampli.sync.ports import Renderer, Transport
from fbstampli.sync.zips import is_zip, upload_zip, zip_delivered, zip_name, zip_parts

log = logging.getLogger(__name__)


class StuckBatchError(RemoteError):
    """A verified temporary file vanished without our rename."""


def _mark_delivered(
    store: Store, batch: Row, run_id: int | None, note: str, documents: DocumentFolder | None
) -> None:
    copies: list[Path] = []
    with store.transaction():
        if is_zip(batch["file_name"]):  # the documents it carried arrived with it
            copies = zip_delivered(store, bytes(batch["content"]), documents)
        members = outbox.mark_batch_delivered(store, batch["id"])
        now = store.now_text()
        detail = f"{batch['file_name']}{note}"
        store.audit_many(  # a file may hold thousands of objects: one statement, not one each
            [(now, run_id, m["kind"], m["fb_id"], "delivered", detail) for m in members]
        )
    for copy in copies:
        copy.unlink(missing_ok=True)


def advance_batch(
    store: Store,
    transport: Transport,
    batch: Row,
    run_id: int | None,
    documents: DocumentFolder | None = None,
) -> None:
    """Move one batch to `delivered` from whatever state a previous run left it in.

    A bills file names documents: each goes first as a file of its own, or, in the ZIP
    layout (a batch named `.zip`), inside the ZIP built from the file (`sync/zips.py`).
    """
    directory, name = batch["directory"], batch["file_name"]
    state = BatchState(batch["state"])
    zipped = is_zip(name)
    if state in (BatchState.PLANNED, BatchState.UPLOADING) and not zipped:
        keep = documents is not None and documents.keep  # documents before what names them
        send_documents(store, transport, directory, bytes(batch["content"]), keep=keep)
    if state is not BatchState.PLANNED:
        final_present = transport.exists(directory, name)
        part_present = transport.exists(directory, part_name(name))
        if final_present:
            _mark_delivered(store, batch, run_id, "", documents)
            return
        if state in (BatchState.PART_VERIFIED, BatchState.RENAME_SENT) and part_present:
            _rename(store, transport, batch, run_id, documents)
            return
        if state is BatchState.RENAME_SENT:
            note = " (taken by Stampli before we saw it)"
            _mark_delivered(store, batch, run_id, note, documents)
            return
        if state is BatchState.PART_VERIFIED:
            with store.transaction():
                set_batch_state(store, batch["id"], BatchState.STUCK, "verified .part vanished")
            raise StuckBatchError(
                f"{directory}/{part_name(name)} was complete but vanished without our rename: "
                "something on the server consumes temporary files; make Stampli ignore "
                "'.*.part', then run `fbstampli retry --failed`"
            )
        if part_present:  # uploading: the .part may be incomplete
            transport.remove(directory, part_name(name))
    content = bytes(batch["content"])
    with store.transaction():
        set_batch_state(store, batch["id"], BatchState.UPLOADING)
        outbox.count_upload_attempt(store, batch["id"])
    if zipped:
        upload_zip(store, transport, directory, name, content, documents)
    else:
        transport.write_part(directory, name, content)
    with store.transaction():
        set_batch_state(store, batch["id"], BatchState.PART_VERIFIED)
    _rename(store, transport, batch, run_id, documents)


def _rename(
    store: Store,
    transport: Transport,
    batch: Row,
    run_id: int | None,
    documents: DocumentFolder | None,
) -> None:
    with store.transaction():
        set_batch_state(store, batch["id"], BatchState.RENAME_SENT)
    transport.rename_part(batch["directory"], batch["file_name"])
    _mark_delivered(store, batch, run_id, "", documents)


def fail_batch(
    store: Store,
    batch: Row,
    error: Exception,
    settings: Settings,
    clock: Clock,
    run_id: int | None,
    report: RunReport,
) -> None:
    """Give the batch up for this run; its deliveries back off (or die) and will be re-batched."""
    message = str(error)
    soonest: datetime | None = None
    with store.transaction():
        if batch["state"] != BatchState.STUCK:
            set_batch_state(store, batch["id"], BatchState.FAILED, message)
        for member in batch_members(store, batch["id"]):
            attempts = int(member["attempts"]) + 1
            dead = is_dead(attempts, settings.sync.max_attempts)
            retry_at = next_attempt_at(
                attempts,
                clock.now(),
                initial_minutes=settings.sync.backoff_initial_minutes,
                max_hours=settings.sync.backoff_max_hours,
            )
            if not dead:
                soonest = retry_at if soonest is None else min(soonest, retry_at)
            outbox.fail_delivery(
                store,
                member["id"],
                dead=dead,
                attempts=attempts,
                next_attempt_at=retry_at,
                error=message,
            )
            store.audit(
                "dead" if dead else "failed",
                kind=member["kind"],
                fb_id=member["fb_id"],
                detail=f"{batch['file_name']}: {message}",
                run_id=run_id,
            )
            report.add("dead" if dead else "failed")
    if isinstance(error, RemoteUnavailableError):
        report.unreachable = True
        message = message.removesuffix("; will retry")
    when = (
        f"; next try {local_text(soonest)} (`fbstampli status`)"
        if soonest is not None
        else "; no tries left: `fbstampli retry --dead` once fixed"
    )
    report.problems.append(f"upload of {batch['file_name']} failed: {message}{when}")
    if isinstance(error, RemoteUnavailableError):
        report.transient.append(report.problems[-1])


@dataclass(slots=True)
class _Run:
    """What every batch of one delivery run is sent with."""

    store: Store
    connection: Connection
    settings: Settings
    clock: Clock
    run_id: int | None
    report: RunReport
    guard: MarkerGuard
    documents: DocumentFolder | None

    def send(self, batch_id: int) -> bool:
        """A few tries within this run, each resuming from the journal on a fresh connection;
        the marker is read before the first upload (`sync.marker`) and follows each batch."""
        store, connection, settings, report = (
            self.store,
            self.connection,
            self.settings,
            self.report,
        )
        last_error: Exception | None = None
        for attempt in range(settings.sftp.upload_attempts):
            batch = outbox.batch(store, batch_id)
            if batch is None:
                return False
            try:
                self.guard.before_upload(connection.get())
                advance_batch(store, connection.get(), batch, self.run_id, self.documents)
            except StuckBatchError as error:
                fail_batch(store, batch, error, settings, self.clock, self.run_id, report)
                return False
            except (RemoteUnavailableError, RemoteError) as error:
                last_error = error
                # One line at the end says it; each try is for the log file and -v.
                log.info("upload of %s failed (try %d): %s", batch["file_name"], attempt + 1, error)
                connection.drop()
                if attempt + 1 < settings.sftp.upload_attempts:  # no wait once tries are spent
                    self.clock.sleep(min(2.0**attempt, 8.0))
                continue
            self.guard.after_delivered(connection.get())
            report.add(f"files.{batch['kind']}")
            report.add(f"sent.{batch['kind']}", len(batch_members(store, batch_id)))
            return True
        batch = outbox.batch(store, batch_id)
        if batch is not None and last_error is not None:
            _remove_part_quietly(connection, batch)
            fail_batch(store, batch, last_error, settings, self.clock, self.run_id, report)
        return False


def _remove_part_quietly(connection: Connection, batch: Row) -> None:
    """A failed batch's name is never reused, so its temporary file is only litter."""
    try:
        connection.get().remove(batch["directory"], part_name(batch["file_name"]))
    except (RemoteError, RemoteUnavailableError):
        log.info("could not remove %s; it is harmless", part_name(batch["file_name"]))


PENDING_SLICE = 1000


def _pending(store: Store, kind: Kind) -> Iterator[Pending]:
    """The pending deliveries of `kind` in queue order, read `PENDING_SLICE` at a time.

    Keyed on the delivery id, so batching the ones already read (which moves
    them out of `pending`) does not shift the slices still to come.
    """
    after = 0
    while True:
        rows = outbox.pending_deliveries_after(store, kind, after, PENDING_SLICE)
        for row in rows:
            yield Pending(
                int(row["id"]),
                Kind(row["kind"]),
                int(row["fb_id"]),
                delivery_rows(row["rows"]),
            )
        if len(rows) < PENDING_SLICE:
            return
        after = int(rows[-1]["id"])


def create_batches(
    store: Store,
    kind: Kind,
    renderer: Renderer,
    *,
    settings: Settings,
    business: str,
    clock: Clock,
    run_id: int | None,
    held: list[str] | None = None,
) -> list[int]:
    """Turn the pending deliveries of one kind into planned batches (committed).

    The queue is read a slice at a time and each file is stored as soon as it
    is full, so memory holds one file's rows, however long the queue. A member
    that cannot be written is held (`sync.poison`) and named in `held`.
    """
    batch_ids: list[int] = []
    pending = _pending(store, kind)
    for planned in _files(
        store, renderer, kind, iter_files(pending, kind, max_rows=settings.sync.max_rows_per_file)
    ):
        rendered = render_or_hold(store, renderer, kind, planned, [] if held is None else held)
        if rendered is None:
            continue
        content, members = rendered
        with store.transaction():
            batch_id = outbox.next_batch_id(store)
            name = renderer.file_name(
                kind, business=business, created_at=clock.now(), batch_id=batch_id
            )
            outbox.add_batch(
                store,
                batch_id=batch_id,
                kind=kind,
                file_name=name
                if planned.kind is not Kind.BILL or renderer.zip_limit is None
                else zip_name(name),
                directory=settings.stampli.inbound_dir,
                sha256=hashlib.sha256(content).hexdigest(),
                content=content,
                delivery_ids=[member.delivery_id for member in members],
            )
        batch_ids.append(batch_id)
    return batch_ids


def _files(
    store: Store, renderer: Renderer, kind: Kind, planned: Iterator[PlannedFile]
) -> Iterator[PlannedFile]:
    """The planned files; in the ZIP layout, each bills file as the ZIPs it needs."""
    limit = renderer.zip_limit
    for file in planned:
        if kind is Kind.BILL and limit is not None:
            yield from zip_parts(store, renderer, file, limit)
        else:
            yield file


def deliver(
    store: Store,
    connection: Connection,
    renderer: Renderer,
    *,
    settings: Settings,
    business: str,
    clock: Clock,
    run_id: int | None,
    report: RunReport,
    on_file: Callable[[int], object] = lambda amount: None,
    documents: Path | None = None,
) -> None:
    """Finish interrupted batches, then send the queue kind by kind, in `Kind` order
    (the coding lists, vendors, bills, payments), each waiting for the kinds before it.

    `on_file(1)` after each file reaches Stampli, for a progress bar. `documents`: the
    home's documents folder (the copies the retention no longer keeps are removed first).
    """
    with store.transaction():
        requeued = requeue_due(store, clock.now())
        release_held(store)
    if requeued:
        report.add("requeued", requeued)
    folder = None
    if documents is not None:
        folder = DocumentFolder(documents, settings.sync.document_retention_days)
        tidy_documents(store, folder, clock.now())
    held: list[str] = []
    guard = MarkerGuard(store, settings.stampli.inbound_dir, business, clock.now())
    run = _Run(store, connection, settings, clock, run_id, report, guard, folder)
    try:
        _deliver_queue(run, renderer, business, on_file, held)
    finally:
        report_held(report, held)


def _deliver_queue(
    run: _Run,
    renderer: Renderer,
    business: str,
    on_file: Callable[[int], object],
    held: list[str],
) -> None:
    store, report = run.store, run.report
    for batch in open_batches(store):
        if not run.send(int(batch["id"])):
            return
        report.add("recovered")
        on_file(1)
    previous: Kind | None = None
    for kind in Kind:
        if previous is not None and outstanding_count(store, previous):
            waiting = len(pending_deliveries(store, kind))
            if waiting:
                report.notes.append(
                    f"{waiting} {kind.value} deliveries wait for every {previous.value} to arrive"
                )
            return
        previous = kind
        hold_behind(store, kind, held)
        batch_ids = create_batches(
            store,
            kind,
            renderer,
            settings=run.settings,
            business=business,
            clock=run.clock,
            run_id=run.run_id,
            held=held,
        )
        for batch_id in batch_ids:
            if not run.send(batch_id):
                return
            on_file(1)
