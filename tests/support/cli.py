"""Run the real CLI and capture what it says: in this process by default, in a new one
(as cron would) for the tests whose subject is the process itself.

A `python -m fbstampli` start costs about half a second of CPU, and the suite runs the CLI
over a thousand times; so `run` calls `fbstampli.cli.run` here, with the environment, umask,
standard streams, logging handlers and keyring backend the subprocess would have, and puts
them all back afterwards. Modules marked `cli_process` (kill -9, signals, core dumps, locks
held across processes, the executable) get the subprocess; `start` always makes one.
"""

import io
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUPPORT = REPO / "tests" / "support"
# Set by tests/conftest.py for tests marked `cli_process`.
in_process: list[bool] = [True]


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FBSTAMPLI_", "FRESHBOOKS_"))}
    env["FBSTAMPLI_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests" / "support")])
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    env["COLUMNS"] = "200"
    env.update(extra or {})
    return env


def run(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> Result:
    if in_process[-1]:
        return run_in_process(home, *args, env=env, stdin=stdin)
    return run_process(home, *args, env=env, stdin=stdin, timeout=timeout)


@contextmanager
def _process_state(environment: dict[str, str], stdin: str) -> Iterator[tuple[io.StringIO, ...]]:
    """This process made to look like a fresh `python -m fbstampli` for one command, then put
    back: environment, umask, streams, the root logger's handlers and the keyring backend."""
    import keyring.core

    saved_environ, saved_streams = dict(os.environ), (sys.stdin, sys.stdout, sys.stderr)
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    saved_umask = os.umask(0o077)
    out, err = io.StringIO(), io.StringIO()
    if str(SUPPORT) not in sys.path:
        sys.path.append(str(SUPPORT))  # PYTHONPATH's second entry: the test keyrings live there
    try:
        os.environ.clear()
        os.environ.update(environment)
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin), out, err
        root.handlers = []  # configure_logging closes what it finds; these are pytest's
        keyring.core._keyring_backend = None  # chosen afresh from this environment
        yield out, err
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers, root.level = saved_handlers, saved_level
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.environ.clear()
        os.environ.update(saved_environ)
        os.umask(saved_umask)
        keyring.core._keyring_backend = None


def run_in_process(
    home: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> Result:
    """What `main()` does, minus the process-wide hardening only a process test can see."""
    from fbstampli.cli import run as cli_run
    from fbstampli.cli.app import _quiet_run, log_file_in_use
    from fbstampli.logs import configure_logging

    with _process_state(cli_env(home, env), stdin or "") as (out, err):
        try:
            configure_logging()
            code = cli_run(list(args))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        finally:
            log_file_in_use.clear()  # module state a new process would start without
            _quiet_run.clear()
    return Result(code, out.getvalue(), err.getvalue())


def run_process(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> Result:
    completed = subprocess.run(
        [sys.executable, "-m", "fbstampli", *args],
        env=cli_env(home, env),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


def start(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fbstampli", *args],
        env=cli_env(home, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def one_line(text: str) -> bool:
    return len([line for line in text.splitlines() if line.strip()]) == 1


def read_lines_until(
    process: subprocess.Popen[str], is_last: Callable[[str], bool], timeout: float = 30.0
) -> list[str]:
    """A long-running command's first lines, up to the one `is_last` picks.

    Read on a thread that stops there, so a silent or dead server fails the test
    (`queue.Empty`) instead of hanging it.
    """
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
            if is_last(line.rstrip("\n")):
                return

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    while not seen or not is_last(seen[-1]):
        seen.append(lines.get(timeout=timeout))
    return seen


def on_a_terminal(home: Path, *args: str) -> tuple[int, str]:
    """The CLI with stdout on a pseudo-terminal (Rich renders for a person): its exit code
    and what it showed."""
    import pty

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "fbstampli", *args],
        env=cli_env(home, {"TERM": "xterm-256color"}),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=subprocess.DEVNULL,
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the program closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    return process.wait(timeout=60), shown.decode("utf-8", errors="replace")
