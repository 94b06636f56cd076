"""A log message may quote outside text (a remote file name, a business's error); on the
console it is shown with its control characters escaped, in every log format."""

import logging

import pytest

from fbstampli.cli.text import clean
from fbstampli.logs import configure_logging

HOSTILE = "stampli_\x1b]0;pwned\x07\x9b31m.csv"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_remote_name_in_a_console_log_line_is_shown_escaped(
    capsys: pytest.CaptureFixture[str], log_format: str
) -> None:
    configure_logging(log_format=log_format, clean=clean)
    try:
        logging.getLogger("fbstampli.sync.pull").warning("could not fetch %s", HOSTILE)
    finally:
        configure_logging()
    said = capsys.readouterr().err
    assert "could not fetch stampli_" in said
    for raw in ("\x1b", "\x07", "\x9b"):  # once: the terminal's title changed
        assert raw not in said, repr(said)
    assert "\\x1b]0;pwned" in said or "\\\\x1b]0;pwned" in said
