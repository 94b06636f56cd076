"""`sync --all`'s tick machinery on its own: the order file, and processes that overrun."""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from fbstampli.installation import BusinessHome
from fbstampli.services.tick import (
    FIRST_FILE,
    Work,
    remember_first,
    run_bounded,
    tick_order,
)


def homes(*names: str) -> list[BusinessHome]:
    return [BusinessHome(name, Path("/nowhere") / name, adopted=False) for name in names]


def names(businesses: list[BusinessHome]) -> list[str]:
    return [business.name for business in businesses]


def test_businesses_cut_last_time_start_first_in_the_order_they_were_cut(tmp_path: Path) -> None:
    remember_first(tmp_path, ["zulu", "beta", "gone"])
    order = tick_order(tmp_path, homes("alpha", "beta", "gamma", "zulu"))
    assert names(order) == ["zulu", "beta", "alpha", "gamma"]


def test_an_unreadable_order_file_costs_only_the_order(tmp_path: Path) -> None:
    (tmp_path / FIRST_FILE).write_text("{not json")
    assert names(tick_order(tmp_path, homes("b", "a"))) == ["b", "a"]


def test_a_quiet_tick_writes_no_order_file(tmp_path: Path) -> None:
    remember_first(tmp_path, [])
    assert not (tmp_path / FIRST_FILE).exists()
    remember_first(tmp_path, ["x"])
    remember_first(tmp_path, [])
    assert json.loads((tmp_path / FIRST_FILE).read_text())["first"] == []


def _said(business: BusinessHome, why: str) -> str:
    return f"{business.name}: {why}"


def test_a_process_deaf_to_sigterm_is_killed_after_the_grace_and_counts_as_cut() -> None:
    def deaf(business: BusinessHome) -> str:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(60)
        return "finished"

    work = Work(run=deaf, cut=lambda b, why: _said(b, "cut"), lost=_said)
    tick = run_bounded(homes("slow"), work, jobs=1, budget=0.3, grace=0.3)
    assert tick.outcomes == {"slow": "slow: cut"}
    assert tick.cut == ["slow"]


def test_a_process_that_dies_without_an_outcome_is_reported_lost() -> None:
    def dies(business: BusinessHome) -> str:
        os._exit(9)

    work = Work(run=dies, cut=_said, lost=_said)
    tick = run_bounded(homes("x"), work, jobs=1, budget=30, grace=1)
    assert tick.outcomes == {"x": "x: its process ended by itself (exit 9)"}
    assert tick.cut == []


def test_never_more_processes_than_jobs_and_every_business_runs(tmp_path: Path) -> None:
    def record(business: BusinessHome) -> str:
        (tmp_path / f"{business.name}.start").write_text(str(time.monotonic()))
        time.sleep(0.2)
        (tmp_path / f"{business.name}.end").write_text(str(time.monotonic()))
        return business.name

    every = homes(*(f"b{index}" for index in range(7)))
    tick = run_bounded(every, Work(run=record, cut=_said, lost=_said), jobs=3, budget=30)
    assert tick.outcomes == {name: name for name in names(every)}
    assert tick.most_at_once == 3
    spans = [
        (float((tmp_path / f"{n}.start").read_text()), float((tmp_path / f"{n}.end").read_text()))
        for n in names(every)
    ]
    for start, _ in spans:
        assert sum(1 for s, e in spans if s <= start < e) <= 3


def test_sigterm_to_the_tick_stops_the_businesses_it_runs_instead_of_orphaning_them(
    tmp_path: Path,
) -> None:
    def ends_the_tick(business: BusinessHome) -> str:
        (tmp_path / "child").write_text(str(os.getpid()))
        os.kill(os.getppid(), signal.SIGTERM)
        time.sleep(60)
        return "finished"

    work = Work(run=ends_the_tick, cut=_said, lost=_said)
    with pytest.raises(KeyboardInterrupt):
        run_bounded(homes("a", "b"), work, jobs=1, budget=60, grace=5)
    child = int((tmp_path / "child").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # stopped and reaped
