"""An accounting firm's tick: `sync --all` over 10, 50 and 200 sandbox businesses.

For each size: the businesses are made (one FreshBooks sandbox login reaching them all, one
SFTP server, a home each), a first tick sends their backlog, then quiet ticks (nothing
changed in FreshBooks) are timed as real `fbstampli sync --all` processes with --jobs 1 and
--jobs 4, and once more with --jobs 4 while one business's FreshBooks takes the connection
and never answers (budget `HANG_BUDGET` s, set through the environment). Peak memory is the
largest sum of PSS (shared pages counted once) over the command's process tree, sampled every
50 ms. The reference is one business alone (`fbstampli --home H sync`, quiet) × N.
The sandboxes run in this process, so their CPU shares the machine with the tick.
Prints figures; asserts nothing.
Run: python bench/bench_firm.py [sizes, default 10,50,200] [jobs, default 1,4]
"""

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fbstampli.sandbox.freshbooks import FreshBooksSandbox  # noqa: E402
from fbstampli.sandbox.sftp_server import SftpServer  # noqa: E402
from tests.support.firm import (  # noqa: E402
    add_businesses,
    firm_accounts,
    point_at,
    silent_server,
)

HANG_BUDGET = 60
CPU = [0.0]  # CPU seconds of the last measured command's process tree


def tree(root: int) -> list[int]:
    """`root` and every process below it (from /proc's parent ids)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Wall seconds, peak tree PSS in MiB, exit code and stderr of one command (its CPU
    seconds, user + system over its whole process tree, are added to `CPU`)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], sum(pss_kib(pid) for pid in tree(process.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU[0] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, peak[0] / 1024, process.returncode, stderr


def environment(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FBSTAMPLI_")}
    env["FBSTAMPLI_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    env.update(extra or {})
    return env


def fbstampli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fbstampli", *args]


def one_size(size: int, jobs_list: list[int], folder: Path) -> None:
    names = [f"client-{index:03d}" for index in range(size)]
    accounts = dict(zip(names, firm_accounts(names), strict=True))
    root = folder / "stampli"
    for sub in ("inbound", "outbound"):
        (root / sub).mkdir(parents=True)
    firm = folder / "firm"
    with FreshBooksSandbox(businesses=list(accounts.values())) as fb, SftpServer(root) as sftp:
        started = time.perf_counter()
        homes = add_businesses(firm, fb, sftp, accounts)
        print(f"{size} businesses made in {time.perf_counter() - started:.1f} s", flush=True)
        env = environment(firm)
        first = measured(fbstampli("-q", "sync", "--all", "--jobs", "4"), env)
        print(f"  first tick (backlog), --jobs 4: {first[0]:.1f} s, exit {first[2]}", flush=True)
        one_home = homes[names[0]]
        alone = measured(fbstampli("-q", "sync"), environment(one_home))
        print(
            f"  one business alone, quiet: {alone[0]:.2f} s ({CPU[0]:.2f} s CPU), {alone[1]:.0f} MiB;"
            f" x {size} = {alone[0] * size:.1f} s one after another",
            flush=True,
        )
        for jobs in jobs_list:
            wall, peak, code, stderr = measured(
                fbstampli("-q", "sync", "--all", "--jobs", str(jobs)), env
            )
            print(
                f"  quiet tick, --jobs {jobs}: {wall:.1f} s ({CPU[0]:.1f} s CPU), peak {peak:.0f} MiB,"
                f" exit {code}"
                + (f" ({stderr.strip().splitlines()[0]})" if stderr.strip() else ""),
                flush=True,
            )
        with silent_server() as hangs:
            point_at(homes[names[-1]], hangs)  # last in name order: it starts last at first
            budget = {"FBSTAMPLI_SYNC_BUSINESS_BUDGET_SECONDS": str(HANG_BUDGET)}
            for tick in ("it starts last", "next tick: it goes first"):
                wall, peak, code, stderr = measured(
                    fbstampli("-q", "sync", "--all", "--jobs", str(jobs_list[-1])),
                    environment(firm, budget),
                )
                print(
                    f"  quiet tick, --jobs {jobs_list[-1]}, one FreshBooks hanging"
                    f" (budget {HANG_BUDGET} s), {tick}: {wall:.1f} s ({CPU[0]:.1f} s CPU),"
                    f" peak {peak:.0f} MiB, exit {code},"
                    f" {len(stderr.strip().splitlines())} line(s) on stderr",
                    flush=True,
                )


def main() -> None:
    sizes = [int(s) for s in (sys.argv[1] if len(sys.argv) > 1 else "10,50,200").split(",")]
    jobs = [int(j) for j in (sys.argv[2] if len(sys.argv) > 2 else "1,4").split(",")]
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="fbstampli-firm-") as folder:
            one_size(size, jobs, Path(folder))


if __name__ == "__main__":
    main()
