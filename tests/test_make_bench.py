"""`make bench`'s timing (bench/perf/make_bench.py) and its README/docs blocks."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.perf import make_bench
from bench.reporting.limits_tables import render_make_bench
from bench.reporting.run_tables import render_timing


def test_stages_run_in_order_with_the_twin_and_the_machine_is_recorded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(make_bench.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    perf = tmp_path / "perf"
    run_dir = tmp_path / "runs" / "default"
    since = time.time() - 30.0
    argv = [
        "--run-dir",
        str(run_dir),
        "--longform-pages",
        "50",
        "--since",
        str(since),
        "--perf-dir",
        str(perf),
    ]
    assert make_bench.main(argv) == 0
    assert [c[3] for c in calls] == ["ingest", "index", "finetune", "run"]
    assert all(c[:3] == [sys.executable, "-m", "bench"] and c[4:6] == ["--profile", "default"] for c in calls)
    assert calls[3][-6:] == [
        "--output", str(run_dir), "--longform-pages", "50", "--longform-output", f"{run_dir}-longform",
    ]  # fmt: skip
    doc = json.loads((run_dir / "make_bench.json").read_text(encoding="utf-8"))
    assert set(doc["stages_s"]) == {"install", "ingest", "index", "finetune", "run"}
    assert doc["stages_s"]["install"] >= 30.0 and doc["total_s"] >= sum(doc["stages_s"].values()) - 0.5
    assert (
        doc["machine"]["cpu_model"]
        and doc["machine"]["cores"] >= 1
        and "load_average_start" in doc["machine"]
    )
    assert doc["longform_pages"] == 50 and "git_commit" in doc
    kept = list(perf.glob("make-bench-*.json"))  # the default profile's timing, kept per CPU model
    assert len(kept) == 1 and json.loads(kept[0].read_text(encoding="utf-8")) == doc
    rendered = render_timing(doc)
    assert (
        "| **total** |" in rendered and doc["machine"]["cpu_model"] in rendered and "Measured on:" in rendered
    )
    order = [rendered.index(f"| {s} |") for s in ("install", "ingest", "index", "finetune", "run")]
    assert order == sorted(order)  # pipeline order, not the JSON's sorted keys


def test_a_failed_stage_stops_the_pipeline_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []

    def call(cmd: list[str]) -> int:
        calls.append(cmd[3])
        return 3 if cmd[3] == "index" else 0

    monkeypatch.setattr(make_bench.subprocess, "call", call)
    argv = ["--run-dir", str(tmp_path / "run"), "--perf-dir", str(tmp_path / "perf"), "--set", "limit=5"]
    assert make_bench.main(argv) == 3
    assert calls == ["ingest", "index"]
    assert not (tmp_path / "run" / "make_bench.json").exists() and not (tmp_path / "perf").exists()


def test_machine_kinds_side_by_side_and_an_old_timing_says_what_it_lacks() -> None:
    amd: dict[str, Any] = {
        "stages_s": {"install": 90.0, "ingest": 2.0, "run": 500.0}, "total_s": 592.0, "git_commit": "abc123",
        "machine": {"cpu_model": "AMD EPYC", "cores": 2, "load_average_start": [0.1],
                    "load_average_end": [2.0]},
    }  # fmt: skip
    intel = {"stages_s": {"ingest": 1, "run": 322}, "total_s": 323, "machine": {"cpu_model": "Intel Xeon"}}
    out = render_make_bench([amd, intel])
    assert "| stage | AMD EPYC | Intel Xeon |" in out
    assert (
        "| install | 90 | – |" in out and "| run | 500 | 322 |" in out and "| **total** | 592 | 323 |" in out
    )
    assert "Intel Xeon, ? cores; contention not recorded" in out and "quiet — AMD EPYC" in out
    old = render_timing({"stages_s": {"run": 322}, "total_s": 322}, {"cpu_model": "Intel Xeon"})
    assert "Measured on: Intel Xeon; contention not recorded" in old


def test_the_timing_says_whether_it_meets_the_goal_and_names_the_cpu_family(tmp_path: Path) -> None:
    from bench.reporting.limits_tables import with_family
    from bench.reporting.run_tables import MAKE_BENCH_GOAL_S

    machine = {"cpu_model": "AMD EPYC"}
    fast = {"stages_s": {"run": 500.0}, "total_s": MAKE_BENCH_GOAL_S - 1, "machine": machine}
    slow = {**fast, "total_s": MAKE_BENCH_GOAL_S + 1}
    assert "— met on this one (15.0 min)" in render_timing(fast)
    assert "— not met on this one (15.0 min)" in render_timing(slow)
    assert "Goal" not in render_timing({"stages_s": {"run": 1.0}})  # no total, no verdict
    named = with_family(fast, tmp_path / "make-bench-amd-epyc-f26m2.json")
    assert named["machine"]["cpu_family"] == "family 26, model 2" and "cpu_family" not in fast["machine"]
    assert "| stage | AMD EPYC (family 26, model 2) |" in render_make_bench([named])
    assert with_family(fast, tmp_path / "make-bench-amd-epyc.json") == fast  # no family in the name


def test_the_alongside_install_overlaps_the_stages_and_run_waits_for_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    done = tmp_path / "venv-installed"
    order: list[str] = []

    def call(cmd: list[str]) -> int:
        order.append(f"{cmd[3]}:{done.exists()}")
        return 0

    monkeypatch.setattr(make_bench.subprocess, "call", call)
    run_dir = tmp_path / "run"
    side = f"sleep 0.5; touch {done}; echo installed"
    argv = ["--run-dir", str(run_dir), "--perf-dir", str(tmp_path / "perf"), "--alongside", side]
    assert make_bench.main(argv) == 0
    # ingest starts before the install is done; run only after it
    assert order[0] == "ingest:False" and order[-1] == "run:True"
    doc = json.loads((run_dir / "make_bench.json").read_text(encoding="utf-8"))
    assert doc["alongside"]["command"] == side and doc["alongside"]["wall_s"] >= 0.5
    assert doc["alongside"]["wall_s"] < 5.0  # when it ended, not when run asked for it
    assert doc["stages_s"]["install_wait"] >= 0.3  # the stubbed stages took no time: run waited
    assert (run_dir / "alongside.log").read_text(encoding="utf-8").strip() == "installed"
    rendered = render_timing(doc)
    assert rendered.index("| finetune |") < rendered.index("| install_wait |") < rendered.index("| run |")


def test_a_failed_alongside_install_stops_before_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[str] = []
    monkeypatch.setattr(make_bench.subprocess, "call", lambda cmd: calls.append(cmd[3]) or 0)
    argv = ["--run-dir", str(tmp_path / "run"), "--perf-dir", str(tmp_path / "p"), "--alongside", "exit 7"]
    assert make_bench.main(argv) == 7
    assert calls == ["ingest", "index", "finetune"]
    assert not (tmp_path / "run" / "make_bench.json").exists()


def test_a_failed_stage_ends_the_alongside_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(make_bench.subprocess, "call", lambda cmd: 3 if cmd[3] == "index" else 0)
    marker = tmp_path / "still-running"
    argv = ["--run-dir", str(tmp_path / "run"), "--perf-dir", str(tmp_path / "p"),
            "--alongside", f"sleep 2; touch {marker}"]  # fmt: skip
    t0 = time.monotonic()
    assert make_bench.main(argv) == 3
    assert time.monotonic() - t0 < 1.5  # not waited for: ended
    time.sleep(2.5)
    assert not marker.exists()  # the whole group ended, not only bash


def test_alongside_wall_time_is_its_own_when_the_stages_take_longer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(make_bench.subprocess, "call", lambda cmd: time.sleep(0.4) or 0)
    run_dir = tmp_path / "run"
    argv = ["--run-dir", str(run_dir), "--perf-dir", str(tmp_path / "p"), "--alongside", "true"]
    assert make_bench.main(argv) == 0
    doc = json.loads((run_dir / "make_bench.json").read_text(encoding="utf-8"))
    assert doc["alongside"]["wall_s"] < 0.8 < doc["total_s"]  # ended long before run (after 1.2 s of stages)
    assert "install_wait" not in doc["stages_s"]


def test_the_busy_share_is_rendered_only_where_own_cpu_counts_the_engine() -> None:
    doc: dict[str, Any] = {"stages_s": {"run": 500.0}, "total_s": 600.0, "git_commit": "abc",
                           "cpu_accounting": "tree",
                           "machine": {"cpu_model": "AMD EPYC", "cores": 2, "load_average_start": [0.1],
                                       "own_cpu_s": 900.0, "wall_s": 500.0, "others_cpu_s": 1.0}}  # fmt: skip
    assert "kept the 2 cores 90 % busy (900 CPU s in 500 s)" in render_make_bench([doc])
    old = {**doc, "cpu_accounting": None}
    assert "busy" not in render_make_bench([old])


def test_the_report_is_timed_as_the_last_stage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(make_bench.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    run_dir = tmp_path / "run"
    argv = ["--run-dir", str(run_dir), "--perf-dir", str(tmp_path / "p"), "--report", "echo report"]
    assert make_bench.main(argv) == 0
    assert calls[-1] == ["bash", "-c", "echo report"] and [c[3] for c in calls[:-1]] == list(
        make_bench.STAGES
    )
    doc = json.loads((run_dir / "make_bench.json").read_text(encoding="utf-8"))
    assert "report" in doc["stages_s"] and doc["total_s"] >= sum(doc["stages_s"].values()) - 0.5
