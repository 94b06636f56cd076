"""What the program says to people, through the real command line (issue 16 §2 and §3):
summaries are sentences with the next step, and each failure is named for what it is."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Connected
from tests.support.cli import REPO, Result, cli_env, one_line, read_lines_until, run, start


def test_init_says_what_it_made_and_what_to_do_next(tmp_path: Path) -> None:
    result = run(tmp_path / "home", "-v", "init", "--key-source", "file")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith(f"Created {tmp_path / 'home'}: ")
    assert "Next: `fbstampli auth login`." in result.stdout
    again = run(tmp_path / "home", "-v", "init")
    assert "is set up already (key in file); nothing changed." in again.stdout


def test_sync_says_sentences_on_the_terminal_and_in_the_log(connected: Connected) -> None:
    result = connected.run("-v", "sync")
    assert result.code == 0, result.stderr
    first = result.stdout.splitlines()[0]
    sent = "Sent 5 files to Stampli: 14 expense categories, 5 taxes, 6 vendors, 30 bills, "
    sent += "10 payments."
    assert first.startswith(sent + " ")
    assert "Reconciled 30 bills: " in first
    assert "push-bills.files" not in result.stdout
    log = (connected.home / "logs" / "fbstampli.log").read_text()
    assert f"sync: exit 0; {sent}" in log


def test_template_check_is_a_sentence(home: Path) -> None:
    template = REPO / "examples" / "stampli-template.toml"
    result = run(home, "-v", "template", "check", str(template))
    assert result.code == 0, result.stderr
    assert result.stdout.strip() == f"{template} is a valid Stampli template."


# -- §3: a failure is named for what it is -------------------------------------------------------

NO_OVERRIDE = ("--bounding-set", "-dac_override,-dac_read_search,-fowner")


def run_as_plain_user(home: Path, *args: str) -> Result:
    """The CLI as a user whom file permissions apply to: as root (CI containers), without the
    capabilities that override them."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv: file permissions cannot be made to apply")
        prefix = ["setpriv", *NO_OVERRIDE, "--inh-caps", NO_OVERRIDE[1]]
    completed = subprocess.run(
        [*prefix, sys.executable, "-m", "fbstampli", *args],
        env=cli_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


def test_an_unwritable_home_is_a_permission_error_with_its_fix_not_a_bug(home: Path) -> None:
    home.chmod(0o500)
    try:
        result = run_as_plain_user(home, "sync")
        doctor = run_as_plain_user(home, "doctor")
    finally:
        home.chmod(0o700)
    assert result.code == 2, result.output
    assert one_line(result.stderr)
    assert f"cannot write {home}" in result.stderr
    assert "(permission denied)" in result.stderr
    assert "chmod u+rwX" in result.stderr or "chown" in result.stderr
    assert "internal error" not in result.stderr
    assert "FAIL home access" in doctor.stdout
    assert "restore the key" not in doctor.stdout  # never key advice for a permission problem


def test_an_unreadable_key_file_is_a_permission_error_not_a_key_problem(home: Path) -> None:
    (home / "state.key").chmod(0o000)
    try:
        result = run_as_plain_user(home, "status")
    finally:
        (home / "state.key").chmod(0o600)
    assert result.code == 2, result.output
    assert f"cannot read {home / 'state.key'} (permission denied)" in result.stderr
    assert "restore" not in result.stderr


def test_an_unwritable_log_file_is_said_once_even_under_quiet(home: Path) -> None:
    (home / "logs").chmod(0o500)
    try:
        result = run_as_plain_user(home, "-q", "status")
    finally:
        (home / "logs").chmod(0o700)
    lines = result.stderr.splitlines()
    about_the_log = [line for line in lines if "fbstampli.log" in line]
    assert len(about_the_log) == 1, result.stderr
    assert "fbstampli.log (permission denied)" in about_the_log[0]
    assert "not recorded in the log file" in about_the_log[0]
    # The only other line is status's own reason for its exit 1 (a home not set up yet).
    assert [line for line in lines if line not in about_the_log] == [
        "fbstampli: needs attention: not logged in to FreshBooks; no Stampli SFTP login"
    ]


def test_a_held_lock_under_quiet_is_logged_not_mailed_unless_held_long(home: Path) -> None:
    from tests.e2e.test_foundation import hold_lock_in_another_process

    holder = hold_lock_in_another_process(home)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        quiet = run(home, "-q", "sync")
        assert (quiet.code, quiet.stderr) == (75, "")
        assert "another fbstampli run" in (home / "logs" / "fbstampli.log").read_text()
        two_hours_ago = time.time() - 2 * 3600
        os.utime(home / "run.lock", (two_hours_ago, two_hours_ago))
        stuck = run(home, "-q", "sync")
        assert stuck.code == 75
        assert one_line(stuck.stderr)
        assert "(for 120 min)" in stuck.stderr
    finally:
        holder.kill()
        holder.communicate()


def test_a_bad_value_from_a_variable_is_blamed_on_the_variable(home: Path) -> None:
    result = run(home, "status", env={"FBSTAMPLI_SYNC_MAX_ATTEMPTS": "many"})
    assert result.code == 2
    assert one_line(result.stderr)
    assert (
        "FBSTAMPLI_SYNC_MAX_ATTEMPTS (environment, for sync.max_attempts): must be a whole number"
        in result.stderr
    )
    assert "config.toml" not in result.stderr


def test_an_unknown_fbstampli_variable_is_an_error_with_the_nearest_name(home: Path) -> None:
    result = run(home, "status", env={"FBSTAMPLI_SYNC_MAX_ATTEMPT": "3"})
    assert result.code == 2
    assert "FBSTAMPLI_SYNC_MAX_ATTEMPT: no such setting" in result.stderr
    assert "did you mean FBSTAMPLI_SYNC_MAX_ATTEMPTS?" in result.stderr
    # the variables that are not settings stay allowed
    key = "ab" * 32
    assert run(home, "status", env={"FBSTAMPLI_TEST_X": "1"}).code != 2
    assert "no such setting" not in run(home, "status", env={"FBSTAMPLI_DB_KEY": key}).stderr


def test_a_duplicated_table_names_its_line_and_does_not_recommend_init(home: Path) -> None:
    with (home / "config.toml").open("a") as config:
        config.write("\n[sync]\nmax_attempts = 3\n[sync]\nmax_attempts = 4\n")
    result = run(home, "init")
    assert result.code == 2
    assert "Cannot declare ('sync',) twice (at line" in result.stderr
    assert "run `fbstampli init`" not in result.stderr


def test_a_missing_home_names_home_and_fbstampli_home(tmp_path: Path) -> None:
    result = run(tmp_path / "nowhere", "status")
    assert result.code == 2
    assert "--home or FBSTAMPLI_HOME" in result.stderr


def test_a_template_error_names_the_column_by_header_and_position_with_a_hint(
    home: Path, tmp_path: Path
) -> None:
    text = (REPO / "examples" / "stampli-template.toml").read_text()
    broken = tmp_path / "broken.toml"
    broken.write_text(
        text.replace(
            '{ header = "Vendor Name", source = "vendor_name" }',
            '{ header = "Vendor Name", source = "vendorname" }',
            1,
        )
    )
    assert broken.read_text() != text
    result = run(home, "template", "check", str(broken))
    assert result.code == 2
    assert "column 3 ('Vendor Name') source: unknown field 'vendorname'" in result.stderr
    assert "did you mean 'vendor_name'?" in result.stderr
    assert "columns[" not in result.stderr


def test_a_quarantined_export_says_where_the_file_went_and_what_to_do(
    connected: Connected,
) -> None:
    broken = connected.sftp.root / "outbound" / "stampli_payments_20261201.csv"
    broken.write_text("garbage\n")
    result = connected.run("pull-stampli", "--now")
    assert result.code == 1
    assert one_line(result.stderr)
    copy = connected.home / "stampli" / "quarantine" / broken.name
    assert f"the copy is in {copy}" in result.stderr
    assert "have Stampli export it again" in result.stderr
    assert f"{broken.name}, line" not in result.stderr  # the name is said once


def test_doctor_says_each_fix_once_without_contradiction_and_json_ok_has_no_fix(
    home: Path,
) -> None:
    result = run(home, "doctor")
    assert result.code == 1
    for line in result.stdout.splitlines():
        fixes = re.findall(r"`fbstampli [^`]+`", line)
        assert len(fixes) == len(set(fixes)), line  # never the same fix twice on a line
    freshbooks = next(line for line in result.stdout.splitlines() if "FreshBooks:" in line)
    assert "client_id" in freshbooks
    assert "auth login" not in freshbooks  # logging in cannot help before the app is set
    checks = json.loads(run(home, "doctor", "--json").stdout)
    assert all(check["fix"] == "" for check in checks if check["ok"])


def test_doctor_prints_each_check_as_it_finishes(connected: Connected) -> None:
    silent = socket.socket()  # accepts connections, never answers: FreshBooks hangs
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    env = {"FBSTAMPLI_FRESHBOOKS_API_URL": url, "FBSTAMPLI_FRESHBOOKS_TIMEOUT_SECONDS": "30"}
    process = start(connected.home, "doctor", env=env)
    try:
        shown = read_lines_until(process, lambda line: line.startswith("ok   template"), 20)
        assert shown[0].startswith("ok   config")
        assert process.poll() is None  # still waiting for FreshBooks, yet the rest is shown
    finally:
        process.kill()
        process.communicate()
        silent.close()


def test_after_a_refused_refresh_token_auth_status_does_not_say_logged_in(
    connected: Connected,
) -> None:
    assert connected.freshbooks.auth.refresh(connected.secrets()[4]) is not None  # spent
    connected.freshbooks.expire_access_tokens()
    assert connected.run("push-bills").code == 3
    status = json.loads(connected.run("auth", "status", "--json").stdout)
    assert status["logged_in"] is False
    assert "auth login" in status["fix"]
    overview = connected.run("status")
    assert "not logged in" in overview.stdout or "refused" in overview.stdout


def test_auth_sftp_with_a_new_password_keeps_the_pinned_key_unasked(connected: Connected) -> None:
    sftp = connected.sftp
    args = ["auth", "sftp", "--host", sftp.host, "--port", str(sftp.port)]
    args += ["--username", sftp.username, "--password-stdin"]
    again = connected.run(*args, stdin=sftp.password + "\n")  # no --accept-host-key, no tty
    assert again.code == 0, again.stderr
    wrong = connected.run(*args, stdin="not-the-password\n")
    assert wrong.code == 2
    assert one_line(wrong.stderr)
    assert "refused user 'stampli' with this password" in wrong.stderr
    assert "nothing was stored" in wrong.stderr


# -- §6: a set-up that survives a new terminal ---------------------------------------------------


def test_the_sandbox_writes_its_settings_into_a_home_so_nothing_needs_exporting(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    sandbox = start(home, "sandbox", "freshbooks", "--port", "0", "--write-config", str(home))
    try:
        lines = read_lines_until(sandbox, lambda line: "Ctrl-C stops" in line)
        assert any("new terminals and cron need only FBSTAMPLI_HOME" in line for line in lines)
        assert run(home, "init", "--key-source", "file").code == 0
        config = (home / "config.toml").read_text()
        assert "client_id = " in config
        assert "# written by `fbstampli sandbox" in config
        checks = {c["name"]: c for c in json.loads(run(home, "doctor", "--json").stdout)}
        assert "client_id" not in checks["FreshBooks"]["detail"]  # the app login is known
        assert "auth login" in checks["FreshBooks"]["detail"] + checks["FreshBooks"]["fix"]
    finally:
        sandbox.kill()
        sandbox.communicate()


# -- §5: progress at a terminal only -------------------------------------------------------------


def run_at_a_terminal(home: Path, *args: str) -> tuple[int, str]:
    """The CLI with stdout and stderr on a pseudo-terminal, as a person runs it; what the
    terminal showed, without its escape sequences."""
    import pty
    import select

    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "fbstampli", *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=cli_env(home),
    )
    os.close(secondary)
    shown = b""
    while select.select([primary], [], [], 60)[0]:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(primary)
    code = process.wait(timeout=60)
    return code, re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", shown.decode(errors="replace"))


def test_sync_at_a_terminal_shows_a_bar_per_stage_with_counts(connected: Connected) -> None:
    code, screen = run_at_a_terminal(connected.home, "sync")
    assert code == 0, screen
    assert re.search(r"Reading bills \d+/30", screen), screen
    assert "Reading vendors 6/6" in screen
    assert "Uploading files to Stampli" in screen
    assert "Reconciling" in screen
    assert "Sent 5 files to Stampli" in screen


def test_sync_off_a_terminal_shows_no_progress_and_no_stray_line(connected: Connected) -> None:
    result = connected.run("sync")
    assert result.code == 0
    # The same sentence as on a terminal (issue 29), and nothing else: no bar, no escape.
    assert result.stdout.startswith("Sent 5 files to Stampli")
    assert len(result.stdout.splitlines()) == 1, result.stdout
    assert "\x1b" not in result.stdout
    assert result.stderr == ""
