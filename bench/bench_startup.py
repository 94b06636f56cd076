"""How long `fbstampli --help` takes to start, against bare `python -c pass` in the same run.

Prints figures; asserts nothing. Target (issue 2): median under 0.3 s.
Run: python bench/bench_startup.py [runs]
"""

import statistics
import subprocess
import sys
import time


def timed(command: list[str], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    baseline = timed([sys.executable, "-c", "pass"], runs)
    help_run = timed([sys.executable, "-m", "fbstampli", "--help"], runs)
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, runpy; sys.argv=['fbstampli','--help'];\n"
            "try:\n    runpy.run_module('fbstampli', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('paramiko','requests','sqlcipher3','rich','cryptography') "
            "if m in sys.modules), file=sys.stderr)",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stderr.strip()
    base, median = statistics.median(baseline), statistics.median(help_run)
    print(f"runs: {runs}")
    print(f"python -c pass          median {base:.3f} s")
    print(
        f"fbstampli --help        median {median:.3f} s  (p90 {sorted(help_run)[int(runs * 0.9) - 1]:.3f} s)"
    )
    print(
        f"fbstampli's own cost    {median - base:.3f} s  (ratio to bare python {median / base:.2f}x)"
    )
    print(f"heavy modules imported by --help: {heavy}")
    print(f"target: median < 0.300 s -> {'met' if median < 0.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
