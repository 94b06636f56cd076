"""The home's log file on a full disk: one line saying so, then quiet; the run goes on."""

import errno
import logging
from pathlib import Path

import pytest

from fbstampli.logs import _log_file_handler


class FullDisk:
    """A stream whose every write fails as a full disk does."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        pass

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    def close(self) -> None:
        pass


def test_a_log_file_that_cannot_be_written_says_so_once_and_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = _log_file_handler(tmp_path / "fbstampli.log")
    handler.stream.close()  # type: ignore[attr-defined]
    handler.stream = FullDisk()  # type: ignore[attr-defined]
    logger = logging.getLogger("fbstampli.test_log_file")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for n in range(5):
            logger.warning("record %d", n)
    finally:
        logger.removeHandler(handler)
        handler.close()
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"fbstampli: cannot write the log file {tmp_path / 'fbstampli.log'} "
        "(No space left on device); not logging to it for the rest of this run"
    ]
    assert "Traceback" not in err
