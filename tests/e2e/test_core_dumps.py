"""A crashing fbstampli writes no core file, and its memory is closed to its own user.

A run holds every secret in memory (state key, tokens, SFTP password, webhook
verifiers). Each test brings a real process to the middle of its work, started as
a careless machine would start it (`ulimit -c unlimited`), then crashes it with a
signal that dumps core, and checks from outside: `/proc/<pid>/limits` says core
size 0, a same-user process without capabilities cannot open `/proc/<pid>/mem`
or `environ`, no core file appears, and nothing the run left behind (stdout,
stderr, logs, any core) holds a secret. A plain Python process launched the same
way is the control: it must be readable and, unless the kernel pipes cores to a
handler, dump a core holding the secret it was given — so the checks can fail.
"""

import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fbstampli.clock import SystemClock
from fbstampli.store import open_state
from tests.e2e.conftest import Connected
from tests.support.cli import cli_env
from tests.support.local_http import free_port, wait_for
from tests.support.summary import find_secrets

pytestmark = pytest.mark.cli_process  # core dumps and the process's own hardening are the subject

CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")
PROBE = (
    "import sys\n"
    "for name in ('mem', 'environ'):\n"
    "    try:\n"
    "        open(f'/proc/{sys.argv[1]}/{name}', 'rb').close()\n"
    "    except PermissionError:\n"
    "        print(name, 'refused')\n"
    "    else:\n"
    "        print(name, 'readable')\n"
)
VERIFIER = "verifier-kept-in-memory-0123456789ab"


def launch(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`argv` started with core dumps unlimited and no capabilities (see tests/support/launch)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.launch", "--no-caps", "--", *argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def core_folder(cwd: Path) -> Path | None:
    """Where the kernel writes cores of a process in `cwd`; None when it pipes them to a handler."""
    pattern = CORE_PATTERN.read_text().strip()
    if pattern.startswith("|"):
        return None
    return Path(pattern).parent if pattern.startswith("/") else cwd / Path(pattern).parent


@dataclass
class Crash:
    core_limit: str  # the "Max core file size" soft and hard limits, as /proc shows them
    memory: dict[str, str]  # "mem"/"environ" -> "readable" | "refused", for a cap-less same user
    returncode: int
    stdout: bytes
    stderr: bytes
    cores: dict[str, bytes]  # new files where cores go, by name


def crash(
    process: subprocess.Popen[bytes], cwd: Path, env: dict[str, str], sig: signal.Signals
) -> Crash:
    """Look at a running process from outside, then kill it with `sig` and collect what it left."""
    folder = core_folder(cwd)
    before = set(folder.iterdir()) if folder is not None and folder.is_dir() else set()
    limits = Path(f"/proc/{process.pid}/limits").read_text().splitlines()
    core_limit = " ".join(next(line for line in limits if line.startswith("Max core")).split()[4:6])
    probe = launch([sys.executable, "-c", PROBE, str(process.pid)], cwd, env)
    probed, problems = probe.communicate(timeout=60)
    assert probe.returncode == 0, problems
    memory = dict(line.split() for line in probed.decode().splitlines())
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    cores: dict[str, bytes] = {}
    if folder is not None and folder.is_dir():
        for path in set(folder.iterdir()) - before:
            cores[path.name] = path.read_bytes()
    return Crash(core_limit, memory, process.returncode, stdout, stderr, cores)


def secrets_of(connected: Connected) -> dict[str, str]:
    return {**connected.named_secrets(), "webhook verifier": VERIFIER}


def store_a_verifier(home: Path) -> None:
    """A verifier in the state, as `webhooks register` leaves one, so the run has it to leak."""
    store, _ = open_state(home / "state.db", {}, SystemClock())
    try:
        with store.transaction():
            store.put_secret("webhook.verifier.1", VERIFIER)
    finally:
        store.close()


def left_behind(connected: Connected, crashed: Crash) -> dict[str, str | bytes]:
    places: dict[str, str | bytes] = {"stdout": crashed.stdout, "stderr": crashed.stderr}
    for path in sorted((connected.home / "logs").glob("*")):
        places[f"log {path.name}"] = path.read_bytes()
    for name, content in crashed.cores.items():
        places[f"core {name}"] = content
    return places


def assert_crashed_clean(connected: Connected, crashed: Crash, sig: signal.Signals) -> None:
    assert crashed.returncode == -sig, crashed.stderr.decode()
    assert crashed.core_limit == "0 0"
    assert crashed.memory == {"mem": "refused", "environ": "refused"}
    assert list(crashed.cores) == []
    assert find_secrets(secrets_of(connected), left_behind(connected, crashed)) == []


@pytest.fixture
def crash_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    return folder


def test_the_control_process_is_readable_and_dumps_its_secret(
    tmp_path: Path, crash_dir: Path
) -> None:
    """Without fbstampli's hardening, the same launch and checks do see memory and a core."""
    token = "control-token-" + "7f3a9c" * 6
    env = cli_env(tmp_path / "home")
    process = launch(
        [sys.executable, "-c", "import sys, time; held = sys.argv[1]; time.sleep(60)", token],
        crash_dir,
        env,
    )
    cmdline = Path(f"/proc/{process.pid}/cmdline")  # the launcher's until it has exec'd
    wait_for(lambda: cmdline.read_bytes().startswith(sys.executable.encode() + b"\0-c"))
    crashed = crash(process, crash_dir, env, signal.SIGABRT)
    assert crashed.returncode == -signal.SIGABRT
    assert crashed.core_limit == "unlimited unlimited"
    assert crashed.memory == {"mem": "readable", "environ": "readable"}
    if core_folder(crash_dir) is not None:
        assert crashed.cores, "the kernel wrote no core for the control; the checks prove nothing"
        assert any(token.encode() in content for content in crashed.cores.values())


def test_sync_crashing_mid_upload_dumps_no_core_and_leaves_no_secret(
    connected: Connected, crash_dir: Path
) -> None:
    store_a_verifier(connected.home)
    env = cli_env(connected.home)
    with connected.sftp.hold("*.part") as hold:
        process = launch([sys.executable, "-m", "fbstampli", "sync"], crash_dir, env)
        assert hold.reached.wait(60), "sync never reached the upload"
        crashed = crash(process, crash_dir, env, signal.SIGABRT)
    assert_crashed_clean(connected, crashed, signal.SIGABRT)


def test_webhook_listener_crashing_dumps_no_core_and_leaves_no_secret(
    connected: Connected, crash_dir: Path
) -> None:
    store_a_verifier(connected.home)
    env = cli_env(connected.home)
    port = free_port()
    process = launch(
        [sys.executable, "-m", "fbstampli", "serve-webhook", "--port", str(port)], crash_dir, env
    )
    wait_for(listening(port, process))
    crashed = crash(process, crash_dir, env, signal.SIGSEGV)
    assert_crashed_clean(connected, crashed, signal.SIGSEGV)


def listening(port: int, process: subprocess.Popen[bytes]) -> Callable[[], bool]:
    import http.client

    def answering() -> bool:
        assert process.poll() is None, "serve-webhook exited early"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    return answering
