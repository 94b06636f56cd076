"""`fbstampli status` for people: one screen that answers "did every bill reach Stampli, and
what is stuck?".

Pure: the status document in, lines out, so the layout is tested without a
terminal. Times are local, each with its zone (`clock.local_text`, as in
every command); text that came from outside (bill numbers, errors, file names) goes
through `text.shown` like every other piece of outside data.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fbstampli.cli.text import shown

# How many failing items the summary names before pointing at `status --stuck`.
FIRST_FEW = 3

KIND_NAMES = {
    "expense_category": "expense category",
    "tax": "tax",
    "vendor": "vendor",
    "bill": "bill",
    "bill_payment": "payment",
}
# Long library texts are cut to this in the summary; `status --stuck` and --json keep them whole.
REASON_WIDTH = 70


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.astimezone()


def local_time(text: str | None, now: datetime) -> str:
    """`2026-12-07 16:05 CET`, as every command shows a time (`now`: the document's moment,
    kept for the callers), or `never`."""
    from fbstampli.clock import local_text

    moment = _moment(text)
    return "never" if moment is None else local_text(moment)


def _reason(text: str, width: int = REASON_WIDTH) -> str:
    """An error as a few words: the server's address (shown above) and "will retry" (the next
    try is shown beside it) are dropped, a long library text is cut."""
    short = re.sub(r"^SFTP server \S+ ", "SFTP server ", shown(text)).removesuffix("; will retry")
    short = short.strip() or "unknown error"
    return short if len(short) <= width else short[: width - 1] + "…"


def _without_name(reason: str, name: str) -> str:
    """A parse error names its file first; beside the file's name that is said twice."""
    return reason.removeprefix(f"{name}, ").removeprefix(f"{name}: ")


def _item_name(item: dict[str, Any]) -> str:
    name = f"{KIND_NAMES.get(item['kind'], item['kind'])} {item['fb_id']}"
    return f'{name} "{shown(item["label"])}"' if item.get("label") else name


def failing_line(item: dict[str, Any], now: datetime, *, whole: bool = False) -> str:
    """One failing delivery: what it is, why, and what happens next."""
    reason = shown(item["error"]) if whole else _reason(item["error"])
    if item["status"] == "dead":
        option = "--vendor" if item["kind"] == "vendor" else "--bill"
        fb_id = item["fb_id"]
        after = (
            f"gave up after {item['attempts']} tries: `fbstampli retry {option} {fb_id}`"
            if item["kind"] in ("vendor", "bill")
            else f"gave up after {item['attempts']} tries: `fbstampli retry --dead`"
        )
    elif item["status"] == "held":
        after = "held: tried again at the next run"
    else:
        after = f"next try {local_time(item['next_attempt_at'], now)}"
    return f"{_item_name(item)} ({reason}; {after})"


def queued_line(item: dict[str, Any], now: datetime) -> str:
    """One delivery queued or mid-upload: not in Stampli yet, and when it goes."""
    if item["status"] == "planned":
        why = "in an upload the next run finishes"
    else:
        why = f"queued since {local_time(item['since'], now)}; goes with the next run"
    if item.get("error"):
        why += f"; last try: {shown(item['error'])}"
    return f"{_item_name(item)} ({why})"


def _freshbooks(document: dict[str, Any], now: datetime) -> str:
    freshbooks = document["freshbooks"]
    if not freshbooks.get("logged_in"):
        who = "not logged in: `fbstampli auth login`"
    else:
        name = shown(freshbooks.get("business_name") or freshbooks.get("account_id") or "")
        business = freshbooks.get("business_id")
        who = f"{name} (business {business}), logged in" if business else f"{name}, logged in"
    last = freshbooks.get("last_run")
    if last is None:
        return f"{who}; no run yet: `fbstampli sync`"
    return f"{who}; last run {local_time(last['started_at'], now)} {run_outcome(last)}"


def run_outcome(run: dict[str, Any]) -> str:
    code = run["exit_code"]
    if code == 0:
        return "ok"
    if code is None:
        return "still running (or killed)"
    if code == 75:
        return f"{run.get('command', '')} could not reach a server; retries by itself (exit 75)"
    if code == 1:
        return f"{run.get('command', '')} finished with problems (exit 1)".lstrip()
    return f"{run.get('command', '')} failed (exit {code})".lstrip()


def _stampli(document: dict[str, Any], now: datetime) -> str:
    sftp = document["sftp"]
    if not sftp.get("configured"):
        return "no SFTP login yet: `fbstampli auth sftp`"
    last = sftp.get("last_upload_at")
    upload = f"last upload {local_time(last, now)}" if last else "nothing uploaded yet"
    return f"{shown(sftp['address'])}, host key pinned; {upload}"


def _of(counts: dict[str, int] | None) -> str:
    if not counts:
        return "none yet"
    return f"{counts['in_stampli']:,} of {counts['objects']:,}"


def _failing_count(failing: list[dict[str, Any]], kind: str) -> str:
    n = sum(1 for item in failing if item["kind"] == kind)
    return f" · {n} failing" if n else ""


def _exports(document: dict[str, Any], now: datetime) -> list[str]:
    files = document["stampli_files"]
    last = files.get("last_processed")
    read = f"{files['read_today']} read today"
    if not files["read_today"] and last:
        read += f" (last {local_time(last.get('processed_at'), now)})"
    quarantined = files["quarantined"]
    if not quarantined:
        return [f"Exports     {read} · none quarantined"]
    lines = [f"Exports     {read} · {len(quarantined)} quarantined:"]
    for entry in quarantined:
        where = f" -> {shown(entry['local_path'])}" if entry.get("local_path") else ""
        reason = _reason(_without_name(entry["reason"], entry["name"]))
        lines.append(f"              {shown(entry['name'])} ({reason}){where}")
    lines.append(
        "              fix: have Stampli export it again; a new file of that name is read "
        "by the next pull"
    )
    return lines


def _reconcile(document: dict[str, Any], now: datetime) -> str:
    reconciliation = document["reconciliation"]
    if reconciliation.get("last_run") is None:
        return "not run yet"
    finished = reconciliation.get("finished_at")
    when = f"last run {local_time(finished, now)}: " if finished else ""
    outcomes = reconciliation.get("outcomes", {})
    parts = [
        f"{outcomes.get('matched', 0):,} matched",
        f"{outcomes.get('in_progress', 0):,} in progress",
    ]
    attention = reconciliation["needs_attention"]
    parts.append(
        f"{attention:,} need attention" + (" (`fbstampli reconcile`)" if attention else "")
    )
    return when + " · ".join(parts)


def status_lines(document: dict[str, Any]) -> list[str]:
    """The one-screen summary, in the order an AP lead asks the questions."""
    now = _moment(document["now"]) or datetime.now().astimezone()
    deliveries = document["deliveries"]
    by_kind = deliveries.get("by_kind", {})
    failing = deliveries.get("failing", [])
    lines = [
        f"FreshBooks  {_freshbooks(document, now)}",
        f"Stampli     {_stampli(document, now)}",
        f"Bills       {_of(by_kind.get('bill'))} in Stampli{_failing_count(failing, 'bill')}",
        f"Vendors     {_of(by_kind.get('vendor'))}{_failing_count(failing, 'vendor')}"
        f" · Payments {_of(by_kind.get('bill_payment'))}{_failing_count(failing, 'bill_payment')}",
    ]
    without = deliveries.get("without_document", {})
    if without.get("count"):
        reasons = ", ".join(f"{n:,} {why}" for why, n in without.get("by_reason", {}).items())
        lines.append(
            f"Documents   {without['count']:,} bills in Stampli without their document "
            f"({reasons}): see the Document Status column, `fbstampli audit --bill ID`"
        )
    deleted = deliveries.get("deleted", {}).get("bill")
    if deleted:
        lines.append(
            f"Deleted     {deleted['deleted']:,} bills deleted in FreshBooks, "
            f"{deleted['voided']:,} voided in Stampli"
        )
    if failing:
        lines.append(f"Failing     {failing_line(failing[0], now)}")
        lines.extend(f"            {failing_line(item, now)}" for item in failing[1:FIRST_FEW])
        if len(failing) > FIRST_FEW:
            lines.append(
                f"            and {len(failing) - FIRST_FEW} more: `fbstampli status --stuck`"
            )
    if deliveries.get("stuck_batches"):
        lines.append(
            f"Uploads     {deliveries['stuck_batches']} stuck: a finished upload vanished before "
            "its rename; see `fbstampli doctor`"
        )
    lines.extend(_exports(document, now))
    lines.append(f"Reconcile   {_reconcile(document, now)}")
    webhooks = document.get("webhooks", {})
    if webhooks.get("last_event_at"):
        lines.append(
            f"Webhooks    last event {local_time(webhooks['last_event_at'], now)} · "
            f"{webhooks['queued_events']} queued"
        )
    fallbacks = [
        fact["fallback"]
        for fact in document.get("freshbooks_behaviour", {}).values()
        if fact and fact.get("fallback")
    ]
    lines.extend(
        f"{'Fallback' if index == 0 else '':<12}{text} (why: `fbstampli doctor`)"
        for index, text in enumerate(fallbacks)
    )
    attention = document.get("attention", [])
    verdict = "Needs attention: " + "; ".join(attention) + "." if attention else "All well."
    lines.append(f"{verdict} Times are local ({document['timezone']}).")
    return lines


def stuck_lines(document: dict[str, Any]) -> list[str]:
    """Everything stuck, whole: each delivery not yet in Stampli (failing, held, queued) and
    each quarantined file, one a line."""
    now = _moment(document["now"]) or datetime.now().astimezone()
    lines = [failing_line(item, now, whole=True) for item in document["deliveries"]["failing"]]
    lines += [queued_line(item, now) for item in document["deliveries"].get("queued", [])]
    for entry in document["stampli_files"]["quarantined"]:
        where = f" -> {shown(entry['local_path'])}" if entry.get("local_path") else ""
        lines.append(f"export {shown(entry['name'])} ({shown(entry['reason'])}){where}")
    return lines or ["Nothing is stuck."]
