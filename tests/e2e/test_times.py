"""Times, the same in every command (issue 29): for people local, each with its zone
(`2026-12-07 16:05 JST`); in JSON and CSV ISO 8601 UTC (`2026-12-07T07:05:00.000000Z`).

Each command runs as its own process under TZ=Asia/Tokyo, nine hours from UTC, so a UTC
time passed off as local, or a local time without its zone, cannot pass unnoticed.
"""

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Connected
from tests.support.cli import Result, run

pytestmark = [pytest.mark.cli_process, pytest.mark.slow]

# The digest is read where it is mailed to: its times are in digest.timezone (named too).
ENV = {"TZ": "Asia/Tokyo", "FBSTAMPLI_DIGEST_TIMEZONE": "Asia/Tokyo"}
HUMAN_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})? JST")
OFFSET = re.compile(r"UTC[+-]\d{2}:\d{2}")  # the zone's offset, named beside it
TIME_OF_DAY = re.compile(r"(?<![\d.:])\d{1,2}:\d{2}(?![\d.])")
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
LOOKS_LIKE_A_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def said_to_people(result: Result, command: str) -> str:
    """What `command` printed for people, each time of day in it local and zoned."""
    text = result.stdout + result.stderr
    bare = OFFSET.sub("", HUMAN_TIME.sub("", text))
    assert not TIME_OF_DAY.search(bare), f"`{command}`: a time without its zone in:\n{text}"
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}", text), f"`{command}`: ISO for people"
    return text


def strings(document: Any) -> Iterator[str]:
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for value in document.values():
            yield from strings(value)
    elif isinstance(document, list):
        for value in document:
            yield from strings(value)


def times_in_json(result: Result, command: str) -> list[str]:
    """Every time `command`'s JSON holds, each ISO 8601 UTC."""
    found = [s for s in strings(json.loads(result.stdout)) if LOOKS_LIKE_A_TIME.match(s)]
    for value in found:
        assert ISO_UTC.fullmatch(value), f"`{command} --json`: {value!r} is not ISO 8601 UTC"
    return found


def times_in_csv(result: Result, command: str) -> list[str]:
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    found = [v for row in rows for v in row.values() if v and LOOKS_LIKE_A_TIME.match(v)]
    for value in found:
        assert ISO_UTC.fullmatch(value), f"`{command}` CSV: {value!r} is not ISO 8601 UTC"
    return found


@pytest.fixture
def lived_in(connected: Connected, tmp_path: Path) -> Connected:
    """A home with runs, uploads, exports read, a reconcile and a delivery failing (its next
    try), adopted by an installation for the `--all` commands."""
    assert connected.run("sync", env=ENV).code == 0
    fb = connected.freshbooks
    fb.create_bill(fb.create_vendor("Late Vendor"), bill_number="LATE-1")
    connected.sftp.faults.deny_writes = True
    assert connected.run("push-bills", env=ENV).code == 1
    adopted = run(tmp_path / "inst", "business", "add", "main", "--adopt", str(connected.home))
    assert adopted.code == 0, adopted.stderr
    return connected


def test_people_read_local_times_with_the_zone_in_every_command(
    lived_in: Connected, tmp_path: Path
) -> None:
    installation = tmp_path / "inst"
    timeless = [["push-bills"], ["reconcile"]]  # here: nothing new sent, nothing to chase
    timed = [
        ["retry", "--failed"],
        ["status"],
        ["status", "--stuck"],
        ["audit"],
        ["doctor"],
        ["auth", "status"],
        ["digest"],
    ]
    for command in timeless + timed:
        text = said_to_people(lived_in.run(*command, env=ENV), " ".join(command))
        assert command in timeless or HUMAN_TIME.search(text), f"`{command}` said no time"
    for command in (["status", "--all"], ["doctor", "--all"]):
        text = said_to_people(run(installation, *command, env=ENV), " ".join(command))
        assert HUMAN_TIME.search(text), f"`{command}` said no time"


def test_scripts_read_iso_utc_in_every_json_and_csv(lived_in: Connected, tmp_path: Path) -> None:
    installation = tmp_path / "inst"
    found: list[str] = []
    for command in (
        ["status"],
        ["audit"],
        ["reconcile"],
        ["doctor"],
        ["auth", "status"],
        ["push-bills"],
        ["retry", "--failed"],
        ["digest"],
    ):
        found += times_in_json(lived_in.run(*command, "--json", env=ENV), " ".join(command))
    for command in (["status", "--all"], ["business", "list"]):
        found += times_in_json(run(installation, *command, "--json", env=ENV), command[0])
    for command in (["audit"], ["reconcile"]):
        csv_out = lived_in.run(*command, "--format", "csv", env=ENV)
        found += times_in_csv(csv_out, " ".join(command))
    assert len(found) > 20  # status, audit, reconcile and auth status hold many
