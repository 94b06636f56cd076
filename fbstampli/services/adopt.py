"""`state adopt-remote`: record what Stampli already received, sending nothing.

For a state the marker refuses (a new or emptied state, or an older backup) when the
newest backup is gone: FreshBooks is read whole and every vendor, bill and payment it
has now is taken as already in Stampli at its current content; the state gets a new id
(backups taken before are no longer it) and the marker is written with it. Only later
changes flow after that. A kill at any point is harmless: run it again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from fbstampli.errors import ConfigError
from fbstampli.options import Options
from fbstampli.report import RunReport
from fbstampli.runtime import open_runtime

QUESTION = (
    "Take every vendor, bill and payment FreshBooks has now as already in Stampli, "
    "sending none of them (only later changes will be sent)?"
)


def adopt_remote(options: Options, *, confirm: Callable[[str], bool] | None) -> RunReport:
    """Read FreshBooks whole, take what waits as delivered, renew the id, write the marker.

    `confirm` asks the person; None (no terminal, or --yes given) means already agreed.
    """
    from fbstampli.services.sync import business_name, push_context
    from fbstampli.store.identity import (
        adopt_documents,
        adopt_waiting,
        raise_version_floor,
        renew_state_id,
    )
    from fbstampli.store.runs import recorded_run
    from fbstampli.sync.marker import read_marker, write_marker
    from fbstampli.sync.push import push

    if confirm is not None and not confirm(QUESTION):
        raise ConfigError("nothing was changed; run `fbstampli state adopt-remote --yes` to go on")
    report = RunReport("state adopt-remote")
    with open_runtime(options) as rt, recorded_run(rt.store, "adopt-remote", report) as run:
        inbound, business = rt.settings.stampli.inbound_dir, business_name(rt)
        remote = read_marker(rt.store, rt.transport(), inbound, business)  # SFTP down: no change
        # Documents are read too: a bill's rows name its document, so a bill read without it
        # would differ from the same bill read by the next sync, and go again.
        context = dataclasses.replace(push_context(rt, run.id), deliver=False)
        read = push(context, full=True)
        with rt.store.transaction():
            deliveries, batches = adopt_waiting(rt.store)
            adopt_documents(rt.store)
            # Later versions are numbered above every one the marker's state sent.
            raise_version_floor(rt.store, remote.versions if remote else 0)
            new_id = renew_state_id(rt.store)
            rt.store.audit(
                "adopt_remote",
                detail=f"{deliveries} deliveries and {batches} open batches taken as in Stampli",
                run_id=run.id,
            )
        marker = write_marker(rt.store, rt.transport(), inbound, business, rt.clock.now())
        report.problems.extend(read.problems)
        report.add("adopted", deliveries)
        report.summary.append(
            f"Took {deliveries} versions of vendors, bills and payments as already in Stampli "
            f"(none sent); this state is now {new_id}, and the marker on the SFTP server "
            f"names it at batch {marker.last_batch}. Only later changes will be sent."
        )
    return report
