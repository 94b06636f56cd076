"""Progress bars on a terminal: one per stage of a run, with counts and an ETA where the
total is known (what `push-bills` and `sync` show while they work)."""

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fbstampli.cli.output import console
from fbstampli.options import Options

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
