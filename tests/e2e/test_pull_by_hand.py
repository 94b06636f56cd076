"""`pull-stampli` by hand before its interval has passed (issue 29): it says first that it
did not look, and how to look now, never "No new Stampli exports" (which claims it looked)."""

from tests.e2e.conftest import Connected

NOT_LOOKED = (
    "Did not look for new Stampli exports: not due yet (pull.interval_minutes); "
    "`fbstampli pull-stampli --now` looks at once."
)


def test_pull_by_hand_before_its_interval_says_first_that_it_did_not_look(
    connected: Connected,
) -> None:
    assert connected.run("pull-stampli").code == 0  # looked: the interval starts
    early = connected.run("pull-stampli")

    assert early.code == 0, early.stderr
    assert early.stdout.splitlines()[0] == NOT_LOOKED
    assert "No new Stampli exports" not in early.stdout
    now = connected.run("pull-stampli", "--now")
    assert now.stdout.splitlines() == ["No new Stampli exports."]


def test_sync_before_the_pull_interval_says_the_pull_did_not_look(connected: Connected) -> None:
    assert connected.run("sync").code == 0
    again = connected.run("sync")

    assert again.code == 0, again.stderr
    assert NOT_LOOKED in again.stdout
    assert "No new Stampli exports" not in again.stdout
