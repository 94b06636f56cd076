"""Every summary is a sentence with the next step, not a list of counters (issue 16 §2)."""

from fbstampli.report import RunReport
from fbstampli.summaries import sentences


def test_a_push_says_how_many_files_and_what_was_in_them() -> None:
    push = RunReport("push-bills")
    for name, n in {
        "files.vendor": 1,
        "files.bill": 1,
        "files.bill_payment": 1,
        "sent.vendor": 8,
        "sent.bill": 40,
        "sent.bill_payment": 13,
    }.items():
        push.add(name, n)
    assert sentences(push) == ["Sent 3 files to Stampli: 8 vendors, 40 bills, 13 payments."]


def test_a_push_with_failures_says_they_are_retried_and_where_to_look() -> None:
    push = RunReport("push-bills")
    push.add("failed", 2)
    assert sentences(push) == [
        "2 items could not be sent and will be tried again (`fbstampli status` says when)."
    ]


def test_sync_is_three_sentences_and_never_a_counter_dump() -> None:
    sync = RunReport("sync")
    for part, name, n in [
        ("push-bills", "files.bill", 1),
        ("push-bills", "sent.bill", 1),
        ("reconcile", "matched", 3),
        ("reconcile", "in_progress", 4),
        ("reconcile", "amount_differs", 1),
    ]:
        sub = RunReport(part)
        sub.add(name, n)
        sync.merge(sub)
    said = " ".join(sentences(sync))
    assert said == (
        "Sent 1 file to Stampli: 1 bill. No new Stampli exports. Reconciled 8 bills: 3 matched, "
        "4 in progress, 1 need attention (`fbstampli reconcile`)."
    )
    assert "push-bills." not in said


def test_retry_and_a_command_that_set_its_own_sentence() -> None:
    retry = RunReport("retry")
    retry.add("requeued")
    assert sentences(retry) == ["Re-queued 1 delivery."]
    login = RunReport("auth login")
    login.add("logged_in")
    login.summary.append("Logged in to FreshBooks. Next: `fbstampli auth sftp`.")
    assert sentences(login) == ["Logged in to FreshBooks. Next: `fbstampli auth sftp`."]
