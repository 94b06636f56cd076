"""What a dry run leaves behind: the files a real run would upload, written to a local folder.

Called inside the transaction the dry run rolls back, so the batches it plans here are
never recorded; only the files remain.
"""

from __future__ import annotations

from pathlib import Path

from fbstampli.atomic import write_atomic
from fbstampli.clock import Clock
from fbstampli.config import Settings
from fbstampli.models import Kind
from fbstampli.report import RunReport
from fbstampli.store import Store, outbox
from fbstampli.sync.deliver import create_batches
from fbstampli.sync.ports import Renderer
from fbstampli.sync.zips import inner_name, is_zip


def write_planned_files(
    store: Store,
    renderer: Renderer,
    *,
    settings: Settings,
    business: str,
    clock: Clock,
    folder: Path,
    report: RunReport,
) -> None:
    """Plan every kind's batches in order and write each file (a ZIP's bills file alone)."""
    for kind in Kind:
        for batch_id in create_batches(
            store, kind, renderer, settings=settings, business=business, clock=clock, run_id=None
        ):
            row = outbox.batch(store, batch_id)
            if row is not None:
                name, content = row["file_name"], bytes(row["content"])
                local = inner_name(name, content) if is_zip(name) else name
                write_atomic(folder / local, content)
                report.add(f"files.{kind.value}")
                report.notes.append(f"would upload {name}")
