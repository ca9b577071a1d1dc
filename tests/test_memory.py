"""Peak memory per variant: the high-water mark is reset before a variant and read after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.core import memory
from bench.eval import runner
from tests.test_rag_arm import _questions
from tests.test_runner import FakeGenerator, FakeStages

LINUX = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")


@LINUX
def test_peak_is_reset_and_follows_an_allocation() -> None:
    import gc

    gc.collect()  # an earlier test's garbage freed during the allocation below would hide it from the peak
    memory.reset_peaks([os.getpid()])
    before = memory.own_peak_mb()
    import mmap

    # 64 MiB of fresh pages, touched, then unmapped: a bytearray comes from malloc, whose heap may reuse
    # resident memory or keep it after the free once a library has raised its mmap threshold
    block = mmap.mmap(-1, 64 * 2**20)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    grown = memory.own_peak_mb()
    block.close()
    assert grown - before > 50  # the allocation shows
    memory.reset_peaks([os.getpid()])
    assert memory.own_peak_mb() < grown - 50  # and the reset forgets it


@LINUX
def test_a_process_tree_is_measured_and_a_gone_one_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pids = memory.tree(os.getpid())
        assert os.getpid() in pids and child.pid in pids
        assert (memory.peak_mb([child.pid]) or 0) > 0
    finally:
        child.kill()
        child.wait(timeout=10)
    assert memory.tree(child.pid) == [] and memory.peak_mb([child.pid]) is None


class EngineGenerator(FakeGenerator):
    """A fake generator whose "engine" is a child process, like a vLLM server."""

    def __init__(self, name: str, log: list[str], engine: subprocess.Popen[bytes]) -> None:
        super().__init__(name, log)
        self.engine = engine

    def engine_pid(self) -> int:
        return self.engine.pid


@LINUX
def test_the_run_records_the_engine_s_peak_per_variant(tmp_path: Path) -> None:
    from bench.config import load_config

    code = "import sys, time; x = b'x' * (40 * 2**20); print('ready', flush=True); time.sleep(60)"
    engine = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert engine.stdout is not None and engine.stdout.readline() == b"ready\n"  # its buffer is resident
        fake = FakeStages(tmp_path)
        stages = fake.stages()

        def make(cfg: Any, adapter: Any) -> dict[str, Any]:
            return {"base": EngineGenerator("base", fake.calls, engine)}

        stages.make_generators = make
        cfg = load_config("default", [f"questions={_questions(tmp_path)}", f"results_dir={tmp_path / 'r'}",
                                      f"corpus={tmp_path / 'x.xml'}", "split=dev", "limit=0",
                                      "run.latency_probe=0", "run.variants=base,echo"])  # fmt: skip
        run_dir = runner.run(cfg, stages=stages)
    finally:
        engine.kill()
        engine.wait(timeout=10)
    v = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))["variants"]
    assert v["base"]["engine_peak_rss_mb"] > 30  # the engine's 40 MiB buffer is in its peak
    assert v["base"]["peak_rss_mb"] > 0 and "engine_peak_rss_mb" not in v["echo"]


@LINUX
def test_an_engine_started_during_the_variant_is_measured_too(tmp_path: Path) -> None:
    """vLLM starts its server on the first request: the first variant's engine peak is still recorded."""
    from bench.config import load_config

    started: list[subprocess.Popen[bytes]] = []

    class LazyEngine(FakeGenerator):
        def engine_pid(self) -> int | None:
            return started[0].pid if started else None

        def generate(self, messages: list[dict[str, str]], max_new_tokens: int) -> Any:
            if not started:
                code = "import time; x = b'x' * (40 * 2**20); print('ready', flush=True); time.sleep(60)"
                started.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE))
                assert started[0].stdout is not None and started[0].stdout.readline() == b"ready\n"
            return super().generate(messages, max_new_tokens)

    try:
        fake = FakeStages(tmp_path)
        stages = fake.stages()
        stages.make_generators = lambda cfg, adapter: {"base": LazyEngine("base", fake.calls)}
        cfg = load_config("default", [f"questions={_questions(tmp_path)}", f"results_dir={tmp_path / 'r'}",
                                      f"corpus={tmp_path / 'x.xml'}", "split=dev", "limit=0",
                                      "run.latency_probe=0", "run.variants=base"])  # fmt: skip
        run_dir = runner.run(cfg, stages=stages)
    finally:
        for p in started:
            p.kill()
            p.wait(timeout=10)
    v = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))["variants"]
    assert v["base"]["engine_peak_rss_mb"] > 30
