"""The home's log file: only a failed write turns it off; a bad record is logging's business."""

import logging
from pathlib import Path

from fbstampli.logs import _log_file_handler


def test_a_bad_log_record_does_not_stop_the_file_logging_later_ones(tmp_path: Path) -> None:
    path = tmp_path / "fbstampli.log"
    handler = _log_file_handler(path)
    logger = logging.getLogger("fbstampli.test_log_file")
    logger.propagate = False
    logger.addHandler(handler)
    previous, logging.raiseExceptions = logging.raiseExceptions, False  # no traceback here
    try:
        logger.warning("a bad record %s %s", 1)  # too few arguments: a bug, not a full disk
        logger.warning("a good record")
    finally:
        logging.raiseExceptions = previous
        logger.removeHandler(handler)
        handler.close()
    assert "a good record" in path.read_text()
