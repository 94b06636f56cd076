"""The marker's rules, as pure functions: its name, its bytes, and which state it refuses."""

from datetime import UTC, datetime

import pytest

from fbstampli.sync.marker import (
    Marker,
    is_marker_name,
    marker_bytes,
    marker_name,
    parse_marker,
    refusal,
)

WHERE = "the marker inbound/.fbstampli-ABC.json"


def test_the_name_is_a_dot_name_no_consumer_pattern_matches() -> None:
    name = marker_name("ABC/../x y")
    assert name == ".fbstampli-ABC-x-y.json"
    assert is_marker_name(name)
    assert is_marker_name(name + ".part")  # its temporary name
    assert not is_marker_name("fbstampli_ABC_20260101T000000Z_b000001_2-bills.csv")
    assert not is_marker_name(".fbstampli-probe-1a2b.csv.part")  # doctor's probe


def test_bytes_and_parse_round_trip() -> None:
    marker = Marker("id-1", 7, 42)
    parsed = parse_marker(marker_bytes(marker, business="ABC", now=datetime.now(UTC)))
    assert parsed == marker
    assert parsed is not None
    assert parsed.versions == 42


@pytest.mark.parametrize(
    "data", [b"", b"not json", b"[1, 2]", b'{"state_id": "x"}', b'{"fbstampli_marker": 9}', b"\xff"]
)
def test_a_marker_that_is_not_ours_parses_as_none(data: bytes) -> None:
    assert parse_marker(data) is None


@pytest.mark.parametrize(
    ("state", "remote", "refused"),
    [
        (Marker("a", 5), None, None),  # no marker: written again, never leave to re-send
        (Marker("a", 5), Marker("a", 5), None),
        (Marker("a", 6), Marker("a", 5), None),  # a kill left the marker behind
        (Marker("a", 4), Marker("a", 5), "older than what Stampli received"),
        (Marker("b", 9), Marker("a", 5), "is not the one that delivered"),
    ],
)
def test_a_state_is_refused_when_another_or_older(
    state: Marker, remote: Marker | None, refused: str | None
) -> None:
    why = refusal(state, remote, WHERE)
    if refused is None:
        assert why is None
    else:
        assert why is not None
        assert refused in why
        assert "`fbstampli state adopt-remote`" in why
