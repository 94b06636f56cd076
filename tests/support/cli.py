"""Run the real CLI in a subprocess, as cron would, and capture what it says."""

import os
import subprocess
import sys
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
