"""Run the real CLI in a subprocess, as cron would, and capture what it says."""

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


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
