"""The state store's schema, as forward-only migrations keyed by `PRAGMA user_version`.

Never edit a migration that has shipped; add a new one. A state file whose
version is newer than the last migration here was written by a newer
fbstampli and is refused rather than guessed at.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: everything the first release keeps.
    """
    CREATE TABLE kv (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE credentials (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE cursors (
        kind TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        name TEXT NOT NULL,
        object_id INTEGER NOT NULL,
        account_id TEXT NOT NULL,
        processed_at TEXT
    );
    CREATE INDEX events_unprocessed ON events (processed_at, id);
    CREATE TABLE source_objects (
        kind TEXT NOT NULL,
        fb_id INTEGER NOT NULL,
        updated_at TEXT,
        vis_state INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        payload TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (kind, fb_id)
    );
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        file_name TEXT NOT NULL UNIQUE,
        directory TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        content BLOB,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX batches_state ON batches (state);
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        fb_id INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        resend INTEGER NOT NULL DEFAULT 0,
        rows TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        batch_id INTEGER REFERENCES batches (id),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (kind, fb_id, content_hash, resend)
    );
    CREATE INDEX deliveries_status ON deliveries (status, next_attempt_at);
    CREATE INDEX deliveries_object ON deliveries (kind, fb_id);
    CREATE TABLE stampli_files (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        size INTEGER,
        mtime TEXT,
        sha256 TEXT NOT NULL,
        export_kind TEXT,
        state TEXT NOT NULL,
        reason TEXT,
        local_path TEXT,
        records INTEGER NOT NULL DEFAULT 0,
        downloaded_at TEXT NOT NULL,
        processed_at TEXT
    );
    CREATE INDEX stampli_files_identity ON stampli_files (name, size, mtime);
    CREATE INDEX stampli_files_sha ON stampli_files (sha256);
    CREATE TABLE stampli_records (
        id INTEGER PRIMARY KEY,
        file_id INTEGER NOT NULL REFERENCES stampli_files (id),
        line INTEGER NOT NULL,
        export_kind TEXT NOT NULL,
        stampli_invoice_id TEXT NOT NULL,
        fb_bill_id INTEGER,
        status TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX stampli_records_bill ON stampli_records (fb_bill_id);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        run_id INTEGER,
        kind TEXT,
        fb_id INTEGER,
        action TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_object ON audit (kind, fb_id, id);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        command TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        exit_code INTEGER,
        summary TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE reconciliations (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        fb_bill_id INTEGER,
        stampli_invoice_id TEXT,
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: reconcile keeps each bill's current outcome (one row per bill, rewritten only when it
    # changes) instead of one row per bill per run; indexes find a bill's payment snapshots,
    # what changed since the last reconcile, a batch's deliveries and the queue's next slice
    # without reading every delivery ever made.
    """
    CREATE INDEX source_objects_payment_bill ON source_objects
        (json_extract(payload, '$.bill_id')) WHERE kind = 'bill_payment';
    CREATE INDEX source_objects_bill_vendor ON source_objects
        (json_extract(payload, '$.vendor_id')) WHERE kind = 'bill';
    CREATE TABLE reconcile_outcomes (
        id INTEGER PRIMARY KEY,
        fb_bill_id INTEGER,
        stampli_invoice_id TEXT NOT NULL DEFAULT '',
        outcome TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        run_id INTEGER NOT NULL,
        recheck_at TEXT
    );
    CREATE UNIQUE INDEX reconcile_outcomes_key ON reconcile_outcomes
        (ifnull(fb_bill_id, 0), stampli_invoice_id);
    CREATE INDEX reconcile_outcomes_bill ON reconcile_outcomes (fb_bill_id);
    CREATE INDEX reconcile_outcomes_due ON reconcile_outcomes (outcome, recheck_at);
    CREATE INDEX source_objects_seen ON source_objects (seen_at);
    CREATE INDEX deliveries_status_updated ON deliveries (status, updated_at);
    CREATE INDEX deliveries_queue ON deliveries (status, kind, id);
    CREATE INDEX deliveries_batch ON deliveries (batch_id);
    INSERT OR IGNORE INTO reconcile_outcomes
        (fb_bill_id, stampli_invoice_id, outcome, detail, run_id)
        SELECT fb_bill_id, ifnull(stampli_invoice_id, ''), outcome, detail, run_id
        FROM reconciliations WHERE run_id = (SELECT max(run_id) FROM reconciliations);
    INSERT INTO kv (name, value)
        SELECT 'reconcile.last_run', max(run_id) FROM reconciliations
        HAVING max(run_id) IS NOT NULL;
    DROP TABLE reconciliations;
    """,
    # 3: bills' documents (issue 26): what each attachment came to, and each distinct
    # document's upload journal, keyed by its content so the same bytes go once.
    """
    CREATE TABLE bill_documents (
        jwt TEXT PRIMARY KEY,
        bill_id INTEGER NOT NULL,
        sha256 TEXT,
        problem TEXT,
        detail TEXT NOT NULL DEFAULT '',
        checked_at TEXT NOT NULL
    );
    CREATE TABLE document_files (
        sha256 TEXT PRIMARY KEY,
        file_name TEXT NOT NULL,
        size INTEGER NOT NULL,
        local_path TEXT,
        state TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 4: the state's own id (issue 24), a random 128-bit id written as a uuid, which the
    # marker on Stampli's SFTP server names: a new or emptied state is told from the one
    # that delivered. A state created afresh gets its own here too.
    """
    INSERT OR IGNORE INTO kv (name, value)
        SELECT 'state.id', substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4)
            || '-' || substr(h, 17, 4) || '-' || substr(h, 21, 12)
        FROM (SELECT lower(hex(randomblob(16))) AS h);
    """,
)


def latest_version() -> int:
    return len(MIGRATIONS)
