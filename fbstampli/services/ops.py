"""Operating commands: status, doctor, audit, state restore.

All of these read the state without the run lock (WAL lets a reader see the
last commit while a run writes), so `status` answers even mid-sync.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from fbstampli.clock import from_utc_text
from fbstampli.doctor import CheckResult
from fbstampli.freshbooks.session import login_summary
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import Runtime, open_runtime
from fbstampli.store import Store

STATUS_SCHEMA = 1


def _age_seconds(rt: Runtime, text: str | None) -> int | None:
    if not text:
        return None
    return int((rt.clock.now() - from_utc_text(text)).total_seconds())


def _sftp(rt: Runtime) -> dict[str, Any]:
    from fbstampli.sftp_session import stored_description

    described = stored_description(rt.store)
    if described is None:
        return {"configured": False}
    return {
        "configured": True,
        "address": f"{described['username']}@{described['host']}:{described['port']}",
        "inbound": rt.settings.stampli.inbound_dir,
        "outbound": rt.settings.stampli.outbound_dir,
        "host_key": f"{described['host_key_type']} {described['host_key_fingerprint']}",
        "auth": described.get("auth", "password"),
    }


def _runs(rt: Runtime) -> dict[str, Any]:
    rows = rt.store.query(
        "SELECT command, started_at, finished_at, exit_code FROM runs WHERE id IN "
        "(SELECT max(id) FROM runs GROUP BY command) ORDER BY command"
    )
    runs: dict[str, Any] = {}
    for row in rows:
        seconds = None
        if row["finished_at"]:
            seconds = round(
                (
                    from_utc_text(row["finished_at"]) - from_utc_text(row["started_at"])
                ).total_seconds(),
                1,
            )
        runs[row["command"]] = {
            "started_at": row["started_at"],
            "seconds": seconds,
            "exit_code": row["exit_code"],  # None: still running, or killed
        }
    return runs


def _deliveries(rt: Runtime) -> dict[str, Any]:
    counts = {
        row["status"]: {"count": row["n"], "oldest_age_seconds": _age_seconds(rt, row["oldest"])}
        for row in rt.store.query(
            "SELECT status, count(*) AS n, min(created_at) AS oldest FROM deliveries "
            "WHERE status IN ('pending', 'planned', 'failed', 'dead') GROUP BY status"
        )
    }
    delivered = rt.store.query_one(
        "SELECT count(*) AS n FROM deliveries WHERE status = 'delivered'"
    )
    stuck = rt.store.query_one("SELECT count(*) AS n FROM batches WHERE state = 'stuck'")
    return {
        "delivered": int(delivered["n"]) if delivered else 0,
        "waiting": counts,
        "stuck_batches": int(stuck["n"]) if stuck else 0,
    }


def _stampli_files(rt: Runtime) -> dict[str, Any]:
    last = rt.store.query_one(
        "SELECT name, processed_at FROM stampli_files WHERE state = 'processed' "
        "ORDER BY id DESC LIMIT 1"
    )
    # A quarantined file stays listed until a later file of that name is stored.
    quarantined = rt.store.query(
        "SELECT name, reason FROM stampli_files AS q WHERE state = 'quarantined' AND NOT EXISTS "
        "(SELECT 1 FROM stampli_files AS later WHERE later.name = q.name AND later.id > q.id "
        "AND later.state IN ('processed', 'duplicate')) ORDER BY id"
    )
    return {
        "last_processed": dict(last) if last else None,
        "quarantined": [dict(row) for row in quarantined],
    }


def _reconciliation(rt: Runtime) -> dict[str, Any]:
    latest = rt.store.query_one("SELECT max(run_id) AS run FROM reconciliations")
    if latest is None or latest["run"] is None:
        return {"last_run": None, "needs_attention": 0}
    rows = rt.store.query(
        "SELECT outcome, count(*) AS n FROM reconciliations WHERE run_id = ? GROUP BY outcome",
        (latest["run"],),
    )
    outcomes = {row["outcome"]: int(row["n"]) for row in rows}
    attention = sum(n for outcome, n in outcomes.items() if outcome != "matched")
    return {"last_run": int(latest["run"]), "outcomes": outcomes, "needs_attention": attention}


def _webhooks(rt: Runtime) -> dict[str, Any]:
    row = rt.store.query_one(
        "SELECT max(received_at) AS last, sum(processed_at IS NULL) AS queued FROM events"
    )
    return {
        "last_event_at": row["last"] if row else None,
        "queued_events": int(row["queued"] or 0) if row else 0,
    }


def status(options: Options) -> dict[str, Any]:
    """Health at a glance, as a stable document (`schema` changes when keys do)."""
    with open_runtime(options, lock=False) as rt:
        return {
            "schema": STATUS_SCHEMA,
            "home": str(rt.paths.home),
            "freshbooks": login_summary(rt.store, rt.clock.now()),
            "sftp": _sftp(rt),
            "runs": _runs(rt),
            "deliveries": _deliveries(rt),
            "stampli_files": _stampli_files(rt),
            "reconciliation": _reconciliation(rt),
            "webhooks": _webhooks(rt),
        }


def audit_trail(options: Options, *, bill: int | None, since: str | None) -> list[dict[str, Any]]:
    """Audit rows in time order; one bill's trail includes its payments' rows."""
    from fbstampli.errors import ConfigError

    clauses: list[str] = []
    params: list[object] = []
    if bill is not None:
        clauses.append(
            "((kind = 'bill' AND fb_id = ?) OR (kind = 'bill_payment' AND fb_id IN "
            "(SELECT fb_id FROM source_objects WHERE kind = 'bill_payment' "
            "AND json_extract(payload, '$.bill_id') = ?)))"
        )
        params.extend([bill, bill])
    if since:
        try:
            date.fromisoformat(since)
        except ValueError:
            raise ConfigError(f"--since {since!r}: expected a date like 2026-01-31") from None
        clauses.append("at >= ?")
        params.append(since)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    with open_runtime(options, lock=False) as rt:
        rows = rt.store.query(
            f"SELECT at, kind, fb_id, action, detail, run_id FROM audit {where} ORDER BY id",  # noqa: S608
            tuple(params),
        )
        return [dict(row) for row in rows]


def doctor(options: Options) -> list[CheckResult]:
    from fbstampli.doctor import run_checks

    return run_checks(options)


def _last_change(store: Store) -> str:
    """When the state last changed; taking a backup is not a change (its row comes after)."""
    row = store.query_one("SELECT max(at) AS at FROM audit WHERE action != 'state_backup'")
    return str(row["at"]) if row and row["at"] else ""


def state_restore(options: Options, source: Path, *, force: bool) -> RunReport:
    """Replace the state with a backup made by `state backup`, atomically, under the run lock.

    The backup must open with the current key (it was written with it); a
    state that changed after the backup was taken is kept unless `force`.
    """

    from fbstampli.clock import SystemClock
    from fbstampli.errors import ConfigError
    from fbstampli.lock import listener_lock, run_lock
    from fbstampli.runtime import require_home
    from fbstampli.store import Store, open_state

    paths = options.paths()
    require_home(paths)
    if not source.is_file():
        raise ConfigError(f"no backup at {source}")
    if source.resolve() in paths.own_files():
        raise ConfigError(f"{source} is fbstampli's own file, not a backup of it")
    report = RunReport("state restore")
    with run_lock(paths.lock), listener_lock(paths.listener_lock, holder="state restore"):
        current, key = open_state(paths.state, options.env, SystemClock())
        try:
            current_change = _last_change(current)
            current.checkpoint()
        finally:
            current.close()
        backup = Store.open(source, key, SystemClock())
        try:
            backup_change = _last_change(backup)
            backup.checkpoint()
        finally:
            backup.close()
        if current_change > backup_change and not force:
            raise ConfigError(
                f"the state changed after this backup (last change {current_change}, backup "
                f"{backup_change or 'empty'}); add --force to replace it anyway"
            )
        from fbstampli.atomic import atomic_writer

        with source.open("rb") as reader, atomic_writer(paths.state) as writer:
            while chunk := reader.read(1 << 20):
                writer.write(chunk)
        for suffix in ("-wal", "-shm"):
            Path(f"{paths.state}{suffix}").unlink(missing_ok=True)
    report.add("restored")
    report.notes.append(f"restored {paths.state} from {source} (last change {backup_change})")
    return report
