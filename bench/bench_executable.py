"""What the standalone executable costs beside the pip install: size, start-up, a push.

Builds with scripts/build-executable into a temporary folder (timed) unless
--executable names a built one; --onefile also builds the one-file form and
times its start-up, the figure behind choosing the one-folder form. Prints:
sizes, `--help` start-up (median and p90 of several runs) for the executable
and for the pip install, and bench_push's first and no-change syncs (wall time,
peak RSS, requests) run by each against the same seeded sandbox. Asserts nothing.
Run: python bench/bench_executable.py [--executable PATH] [--onefile] [--runs N]
     [--bills N --vendors N --payments N]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fbstampli.options import Options  # noqa: E402
from fbstampli.sandbox.freshbooks import FreshBooksSandbox  # noqa: E402
from fbstampli.sandbox.sftp_server import SftpServer  # noqa: E402
from fbstampli.services.sandbox import connect_home  # noqa: E402

LATENCY = 0.020  # as bench_push: 20 ms added to every FreshBooks request


def build(folder: Path, *flags: str) -> tuple[Path, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHON"] = sys.executable
    started = time.perf_counter()
    subprocess.run(
        [
            *("bash", str(REPO / "scripts" / "build-executable")),
            *("--dist", str(folder / "dist"), "--work", str(folder / "work"), *flags),
        ],
        env=env,
        capture_output=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    program = folder / "dist" / "fbstampli"
    return (program if "--onefile" in flags else program / "fbstampli"), seconds


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def startup(commands: dict[str, list[str]], runs: int) -> dict[str, tuple[float, float]]:
    """(median, p90) of `--help` per command, taken in turns so that load hits all alike."""
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, command in commands.items():
            env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
            if label.startswith("pip"):
                env["PYTHONPATH"] = str(REPO)  # the pip install is this checkout
            started = time.perf_counter()
            subprocess.run([*command, "--help"], env=env, capture_output=True, check=True)
            samples[label].append(time.perf_counter() - started)
    return {
        label: (statistics.median(times), sorted(times)[max(0, int(runs * 0.9) - 1)])
        for label, times in samples.items()
    }


def measured(command: list[str], home: Path, *args: str) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MB (the process and anything it waited for) and exit code."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["FBSTAMPLI_HOME"] = str(home)
    if command[0] == sys.executable:
        env["PYTHONPATH"] = str(REPO)
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, process.returncode


def push_figures(
    label: str, command: list[str], folder: Path, bills: int, vendors: int, payments: int
) -> None:
    root = folder / label / "sftp"
    for sub in ("inbound", "outbound"):
        (root / sub).mkdir(parents=True)
    with FreshBooksSandbox(latency=LATENCY) as fb, SftpServer(root) as sftp:
        fb.seed(vendors=vendors, bills=bills, payments=payments, seed=3)
        home = folder / label / "home"
        connect_home(Options(home=home, env={}), fb, sftp, business="bench")
        for run in ("first sync", "no-change sync"):
            fb.reset_counters()
            seconds, peak_mb, code = measured(command, home, "push-bills")
            requests = sum(
                fb.count("GET", f"{k}.list") for k in ("bill_vendors", "bills", "bill_payments")
            )
            print(
                f"  {label:10s} {run:15s} exit {code}  wall {seconds:6.2f} s  "
                f"peak RSS {peak_mb:6.1f} MB  list requests {requests}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executable", type=Path, help="a built fbstampli instead of building one")
    parser.add_argument(
        "--onefile", action="store_true", help="also build and time the one-file form"
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--bills", type=int, default=10000)
    parser.add_argument("--vendors", type=int, default=1000)
    parser.add_argument("--payments", type=int, default=5000)
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fbstampli-bench-exe-"))
    try:
        if options.executable:
            program = options.executable.resolve()
        else:
            program, seconds = build(folder / "onedir")
            print(f"build (fresh virtual environment + PyInstaller): {seconds:.1f} s")
        print(f"executable {program}: {size_mb(program):.1f} MB")
        print(f"its folder: {size_mb(program.parent):.1f} MB")
        for tarball in program.parent.parent.glob("fbstampli-*.tar.gz"):
            print(f"tarball {tarball.name}: {size_mb(tarball):.1f} MB")
        pip = [sys.executable, "-m", "fbstampli"]
        installed = shutil.which("fbstampli")
        commands = {"executable": [str(program)]}
        if options.onefile:
            onefile, seconds = build(folder / "onefile", "--onefile")
            print(f"one-file form: {size_mb(onefile):.1f} MB, built in {seconds:.1f} s")
            commands["one-file form"] = [str(onefile)]
        if installed:
            commands["pip: console script"] = [installed]
        commands["pip: python -m"] = pip
        print(f"--help start-up over {options.runs} runs, taken in turns (median, p90):")
        for label, (median, p90) in startup(commands, options.runs).items():
            print(f"  {label:20s} {median:.3f} s  {p90:.3f} s")
        print(
            f"push-bills: {options.vendors} vendors, {options.bills} bills, {options.payments} payments; "
            f"{LATENCY * 1000:.0f} ms per request"
        )
        for label, command in (("executable", [str(program)]), ("pip", pip)):
            push_figures(label, command, folder, options.bills, options.vendors, options.payments)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
