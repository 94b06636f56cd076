"""Bookkeeping of command runs, for `status` and the audit trail."""

from __future__ import annotations

import json

from fbstampli.report import RunReport
from fbstampli.store import Store


def start_run(store: Store, command: str) -> int:
    with store.transaction():
        return store.execute(
            "INSERT INTO runs (command, started_at) VALUES (?, ?)", (command, store.now_text())
        )


def finish_run(store: Store, run_id: int, report: RunReport, exit_code: int | None = None) -> None:
    code = int(report.exit_code) if exit_code is None else exit_code
    with store.transaction():
        store.execute(
            "UPDATE runs SET finished_at = ?, exit_code = ?, summary = ? WHERE id = ?",
            (store.now_text(), code, json.dumps(report.counts, sort_keys=True), run_id),
        )
