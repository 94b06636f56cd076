"""reconcile acknowledge: an accountant's reason for one bill's outcome, kept until its facts
change (the rules are in `sync/baseline.py`)."""

from __future__ import annotations

from fbstampli.errors import ConfigError
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import open_runtime

MAX_REASON = 500


def acknowledge(options: Options, *, bill_id: int, reason: str) -> RunReport:
    """Record `reason` for the bill's current outcome, which stops needing attention at once;
    the audit trail keeps who-knows-why forever, the outcome only while its facts hold."""
    from fbstampli.models.outcome import Outcome
    from fbstampli.store.baseline import (
        Acknowledgement,
        bill_hashes,
        current_outcome,
        record_acknowledgement,
    )
    from fbstampli.sync.baseline import acknowledged_detail

    said = " ".join(reason.split())
    if not said:
        raise ConfigError('--reason must say why, e.g. --reason "paid by cheque before go-live"')
    if len(said) > MAX_REASON:
        raise ConfigError(f"--reason is {len(said)} characters; keep it under {MAX_REASON}")
    with open_runtime(options) as rt:
        current = current_outcome(rt.store, bill_id)
        if current is None:
            raise ConfigError(
                f"bill {bill_id} has no reconcile outcome: check the id, or run "
                "`fbstampli reconcile` first"
            )
        outcome, detail = current
        if not Outcome(outcome).needs_attention:
            raise ConfigError(
                f"bill {bill_id} needs no attention ({outcome}); nothing to acknowledge"
            )
        ack = Acknowledgement(
            outcome=outcome,
            detail=detail,
            bill_hash=bill_hashes(rt.store, [bill_id]).get(bill_id, ""),
            reason=said,
            at=rt.store.now_text(),
        )
        record_acknowledgement(
            rt.store,
            bill_id,
            ack,
            outcome=Outcome.ACKNOWLEDGED.value,
            detail=acknowledged_detail(ack),
        )
    report = RunReport("reconcile acknowledge")
    report.summary.append(
        f"Bill {bill_id}: {outcome} acknowledged and kept in the audit trail; it needs "
        "attention again if its payments, its Stampli records or the bill change."
    )
    return report
