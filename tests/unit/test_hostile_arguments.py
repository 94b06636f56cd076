"""Hostile command lines: any value for any option ends in a clear error, never a bug report.

The real argument handling and error mapping (`fbstampli.cli.run`, what `main`
calls) run in-process against an initialised home that is not logged in, so
no command reaches a network. Commands that listen, connect or write where
their argument says are left to the table of known cases below and to their
own end-to-end tests.
"""

import contextlib
import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fbstampli.cli import run
from fbstampli.errors import ExitCode
from tests.support.summary import fuzz_case

CLEAR_EXITS = {code.value for code in ExitCode} - {ExitCode.INTERNAL.value}

# `X` is where the hostile value goes.
COMMAND_LINES = [
    ["audit", "--bill", "X"],
    ["audit", "--since", "X"],
    ["audit", "--format", "X"],
    ["retry", "--bill", "X"],
    ["retry", "--vendor", "X", "--queue-only"],
    ["push-bills", "--dry-run", "--since", "X"],
    ["reconcile", "--format", "X"],
    ["reconcile", "--output", "X"],
    ["template", "check", "X"],
    ["init", "--key-source", "X"],
    ["webhooks", "delete", "X"],
    ["webhooks", "register", "--url", "X"],
    ["webhooks", "verify", "1", "--verifier", "X"],
    ["--log-format", "X", "status"],
    ["--config", "X", "status"],
    ["--home", "X", "status"],
    ["X"],
    ["status", "X"],
]

values = (
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=60)
    | st.integers(min_value=-(10**30), max_value=10**30).map(str)
    | st.sampled_from(
        [
            "",
            "-1",
            "0",
            "--help",
            "2024-02-30",
            "9" * 400,
            "n" * 300,  # longer than a file name may be
            "\udcff",  # how Python hands over a byte of argv that is not UTF-8
            "../../etc/passwd",
            "=cmd|' /C calc'!A0",
            "1e309",
            "nan",
            "http://[::1",  # urlsplit raises on a broken IPv6 host
            "https://example.com:99999/hook",
        ]
    )
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile") / "home"
    code, _, err = invoke(["--home", str(folder), "init", "--key-source", "file"])
    assert code == 0, err
    return folder


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """Put back the root handlers that the CLI's logging set-up replaces (pytest's among them)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)


def invoke(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with logging_kept(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run(args)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=st.sampled_from(COMMAND_LINES), value=values)
@example(line=["retry", "--bill", "X"], value="9" * 30)  # once an OverflowError in SQLite
@example(line=["reconcile", "--format", "X"], value="bogus")  # once silently a table
@example(line=["init", "--key-source", "X"], value="bogus")  # once accepted on a second run
@example(line=["webhooks", "register", "--url", "X"], value="http://[::1")  # once a ValueError
@example(line=["webhooks", "register", "--url", "X"], value="https://h:99999/")
@fuzz_case
def test_any_value_for_any_option_is_a_clear_exit_never_an_internal_error(
    home: Path, tmp_path_factory: pytest.TempPathFactory, line: list[str], value: str
) -> None:
    args = ["--home", str(home), *(value if part == "X" else part for part in line)]
    with contextlib.chdir(tmp_path_factory.getbasetemp()):
        code, _, err = invoke(args)
    assert code in CLEAR_EXITS, (args, code, err)
    assert "Traceback" not in err
    assert "internal error" not in err
    if code != 0:
        assert err.strip(), f"exit {code} without a word: {args}"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["retry", "--bill", "9" * 30], "--bill"),
        (["retry", "--bill", "0"], "--bill"),
        (["audit", "--bill", "-1"], "--bill"),
        (["webhooks", "delete", "9" * 30], "CALLBACK_ID"),
        (["serve-webhook", "--port", "99999"], "--port"),
        (["auth", "sftp", "--host", "h", "--username", "u", "--port", "0"], "--port"),
        (["demo", "--bills", "-3"], "--bills"),
        (["demo", "--bills", "2"], "--bills"),  # once a silent exit 1: too few to pay any
        (["sandbox", "sftp", "--root", "/proc/1/nope"], "choose another --root"),
        (["sandbox", "sftp", "--port", "70000"], "--port"),
        (["sandbox", "freshbooks", "--bills", "-1"], "--bills"),
        (["reconcile", "--format", "xml"], "--format"),
        (["audit", "--format", "yaml"], "--format"),
        (["reconcile", "--output", "/no/such/folder/report.csv"], "does not exist"),
        (["state", "backup", "/no/such/folder/backup.db"], "does not exist"),
        (["reconcile", "--output", "x" * 300 + "/r.csv"], "File name too long"),
        (["state", "backup", "y" * 300], "File name too long"),
        (["init", "--key-source", "keyring"], "init never replaces a key"),
        (["template", "check", "/dev/zero"], "not a plain file"),  # once read forever
    ],
)
def test_a_value_out_of_range_is_refused_before_any_work_with_exit_2(
    home: Path, args: list[str], says: str
) -> None:
    code, out, err = invoke(["--home", str(home), *args])
    assert code == ExitCode.USAGE, (args, code, out, err)
    assert says in err
    assert "internal error" not in err


def test_a_backup_onto_a_folder_is_refused_in_one_line(home: Path, tmp_path: Path) -> None:
    code, _, err = invoke(["--home", str(home), "state", "backup", str(tmp_path)])
    assert code == ExitCode.USAGE
    assert err.strip() == f"fbstampli: error: cannot write a backup to {tmp_path}: it is a folder"


def test_a_home_that_cannot_be_created_is_one_line_naming_it(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    for home, reason in [(not_a_folder, "File exists"), ("x" * 300, "File name too long")]:
        code, _, err = invoke(["--home", str(home), "init", "--key-source", "file"])
        assert code == ExitCode.USAGE, err
        assert err.startswith("fbstampli: error: cannot ")
        assert reason in err
        assert "--home" in err


ENVIRONMENT = [
    "FBSTAMPLI_DB_KEY",
    "FBSTAMPLI_SYNC_MAX_ATTEMPTS",
    "FBSTAMPLI_SYNC_DELETED_BILLS",
    "FBSTAMPLI_FRESHBOOKS_API_URL",
    "FBSTAMPLI_FRESHBOOKS_TIMEOUT_SECONDS",
    "FBSTAMPLI_WEBHOOK_PORT",
    "FBSTAMPLI_WEBHOOK_HOST",
    "FBSTAMPLI_MONITORING_PING_URL",
    "FBSTAMPLI_STAMPLI_INBOUND_DIR",
    "FBSTAMPLI_PULL_MAX_FILE_MB",
    "FRESHBOOKS_CLIENT_ID",
]


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    line=st.sampled_from(
        [["status"], ["push-bills", "--dry-run"], ["audit"], ["retry", "--failed"]]
    ),
    environment=st.dictionaries(st.sampled_from(ENVIRONMENT), values, max_size=3),
)
@example(line=["status"], environment={"FBSTAMPLI_FRESHBOOKS_API_URL": "http://[::1"})
@example(line=["status"], environment={"FBSTAMPLI_DB_KEY": "not hex"})
@fuzz_case
def test_any_environment_is_a_clear_exit_never_an_internal_error(
    home: Path, line: list[str], environment: dict[str, str]
) -> None:
    with mock.patch.dict(os.environ, {k: v for k, v in environment.items() if "\x00" not in v}):
        code, _, err = invoke(["--home", str(home), *line])
    assert code in CLEAR_EXITS, (environment, line, code, err)
    assert "internal error" not in err
