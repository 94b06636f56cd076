"""The conventions operators bring from gh, httpie, borgmatic, rclone and restic (issue 29).

The real program in a subprocess, its stdout a pipe as under a wrapper script or cron.
"""

import http.client
import json
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Connected
from tests.support.cli import one_line, run, start
from tests.support.local_http import free_port, wait_for


def answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status < 600
    except OSError:
        return False
    finally:
        connection.close()


def initialised(tmp_path: Path, name: str = "home") -> Path:
    home = tmp_path / name
    assert run(home, "init", "--key-source", "file").code == 0
    return home


def test_init_says_what_it_did_in_a_pipe_and_only_q_silences_it(tmp_path: Path) -> None:
    said = run(tmp_path / "a", "init", "--key-source", "file")
    quiet = run(tmp_path / "b", "-q", "init", "--key-source", "file")

    assert said.code == quiet.code == 0
    assert said.stdout.startswith(f"Created {tmp_path / 'a'}")
    assert quiet.stdout == ""


def test_sync_says_what_it_did_in_a_pipe(connected: Connected) -> None:
    result = connected.run("sync")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("Sent 5 files to Stampli")
    assert "\x1b[" not in result.stdout  # no colour, no progress bar in a pipe


def test_global_options_after_the_command_act_as_before_it(tmp_path: Path) -> None:
    home = initialised(tmp_path)
    before = run(home, "-q", "status")
    after = run(home, "status", "-q")
    elsewhere = tmp_path / "elsewhere"
    created = run(tmp_path / "unused", "init", "--key-source", "file", "--home", str(elsewhere))

    assert (after.code, after.stdout, after.stderr) == (before.code, before.stdout, before.stderr)
    assert after.stdout == ""
    assert one_line(after.stderr)
    assert created.code == 0, created.stderr
    assert (elsewhere / "state.db").exists()
    assert not (tmp_path / "unused").exists()


def test_a_command_s_own_option_of_a_global_name_stays_the_command_s(tmp_path: Path) -> None:
    # `auth login --business ID` is FreshBooks' business id, not the installation's --business.
    result = run(initialised(tmp_path), "auth", "login", "--business", "not-a-number")
    assert result.code == 2
    assert "invalid value for '--business'" in result.stderr
    assert "fbstampli auth login -h" in result.stderr


def test_option_parser_errors_are_one_fbstampli_error_line_with_the_fix(tmp_path: Path) -> None:
    cases = [
        (("sync", "--xyzzy"), {}, "no such option: --xyzzy; see `fbstampli sync -h`"),
        (("synk",), {}, "Did you mean 'sync'? See `fbstampli -h`"),
        (("status",), {"FBSTAMPLI_ALLOW_FOREIGN_HOME": "maybe"}, "FBSTAMPLI_ALLOW_FOREIGN_HOME"),
    ]
    for args, env, said in cases:
        result = run(tmp_path / "h", *args, env=env)
        assert result.code == 2, args
        assert one_line(result.stderr), result.stderr
        assert result.stderr.startswith("fbstampli: error: "), result.stderr
        assert said in result.stderr
        assert "Usage:" not in result.output


def test_auth_status_exits_1_when_logged_out(tmp_path: Path) -> None:
    result = run(initialised(tmp_path), "auth", "status")
    assert result.code == 1
    assert "not logged in to FreshBooks" in result.stderr
    assert "fbstampli auth login" in result.stderr


def test_auth_status_exits_0_when_logged_in(connected: Connected) -> None:
    assert connected.run("auth", "status").code == 0


def test_fbstampli_config_names_the_config_file_and_a_misspelt_key_gets_a_suggestion(
    tmp_path: Path,
) -> None:
    home = initialised(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text("[sync]\nmax_attempt = 3\n")

    result = run(home, "status", env={"FBSTAMPLI_CONFIG": str(other)})

    assert result.code == 2
    assert one_line(result.stderr)
    assert "sync.max_attempt: unknown setting; did you mean max_attempts?" in result.stderr


def test_a_misspelt_section_gets_a_suggestion(tmp_path: Path) -> None:
    home = initialised(tmp_path)
    (home / "config.toml").write_text("[freshboks]\n")
    result = run(home, "status")
    assert result.code == 2
    assert "freshboks: unknown section; did you mean freshbooks?" in result.stderr


def test_hints_keep_the_business_they_were_given_for(tmp_path: Path) -> None:
    home = tmp_path / "installation"
    assert run(home, "business", "add", "alpha", "--key-source", "file").code == 0
    before = run(home, "--business", "alpha", "auth", "status")
    after = run(home, "auth", "status", "--business", "alpha")
    for result in (before, after):
        assert result.code == 1
        assert "`fbstampli --business alpha auth login`" in result.stderr, result.stderr


def test_q_status_all_is_one_line_on_stderr(tmp_path: Path) -> None:
    home = tmp_path / "installation"
    for name in ("alpha", "beta"):
        assert run(home, "business", "add", name, "--key-source", "file").code == 0
    result = run(home, "-q", "status", "--all")
    assert result.code == 1
    assert result.stdout == ""
    assert one_line(result.stderr)
    assert result.stderr.startswith("fbstampli: needs attention: business alpha: ")
    assert "; business beta: " in result.stderr


@pytest.mark.slow
def test_a_second_serve_webhook_all_exits_at_once_saying_why(tmp_path: Path) -> None:
    home = tmp_path / "installation"
    assert run(home, "business", "add", "alpha", "--key-source", "file").code == 0
    port = free_port()
    first = start(home, "serve-webhook", "--all", "--port", str(port))
    try:
        wait_for(lambda: answers(port))
        started = time.monotonic()
        second = run(home, "serve-webhook", "--all", "--port", str(free_port()), timeout=60)
        took = time.monotonic() - started
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    assert second.code == 75, second.stderr
    assert "fbstampli: error: serve-webhook (pid" in second.stderr
    assert "stop it" in second.stderr
    assert took < 30  # it did not stay up serving nothing


def test_sync_dry_run_writes_the_files_and_sends_nothing(connected: Connected) -> None:
    result = connected.run("sync", "--dry-run", "--json")
    assert result.code == 0, result.stderr
    assert connected.inbound_files() == []
    written = sorted(path.name for path in (connected.home / "dry-run").iterdir())
    assert [name.rsplit("_", 1)[1] for name in written] == [
        "0-categories.csv",
        "0-taxes.csv",
        "1-vendors.csv",
        "2-bills.csv",
        "3-payments.csv",
    ]
    assert any(
        "pull-stampli and reconcile were not run" in n for n in json.loads(result.stdout)["notes"]
    )


def test_shell_completion_is_generated_by_the_program(tmp_path: Path) -> None:
    script = run(tmp_path, env={"_FBSTAMPLI_COMPLETE": "source_bash"})
    completed = run(
        tmp_path,
        env={
            "_FBSTAMPLI_COMPLETE": "complete_bash",
            "COMP_WORDS": "fbstampli sy",
            "COMP_CWORD": "1",
        },
    )
    assert script.code == 0
    assert "complete -o default -F _fbstampli_completion fbstampli" in script.stdout
    assert completed.stdout.split() == ["sync"]
