"""A whole ``bench run`` per backend: transformers vs vllm on fact questions no run had asked before.

The ptwiki fact questions' *test* split (never evaluated, never trained) gives ``PERF_RUN_N`` questions
(default 120, stratified by relation x popularity); their pages plus 200 train-fact distractors are copied
from the shared ptwiki sample into a work directory (``bench questions corpus``), ingested and indexed
*untimed*. Then ``bench run`` (variants base, rag, oracle) is timed per backend as a user runs it, in a child
process: model load and engine start included, a fresh run directory each time (no answer cache). Recorded
per backend: wall seconds, peak RSS of the child's process group, and each variant's EM / contains / p50;
per variant, the share of answers identical between the backends. Written to
``results/perf/backend-run.json`` with the machine record; docs/backends.md's ``backend-run`` block
renders it (:func:`bench.reporting.vllm_tables.render_backend_run`).

Run: ``.venv/bin/python tests/perf/test_perf_backend_run.py`` (needs ``make install EXTRAS=vllm``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.config import Config  # noqa: E402
from bench.core.machine import MachineProbe  # noqa: E402
from bench.io import atomic_write_json, iter_jsonl, read_json  # noqa: E402


class TreeUsage:
    """Peak summed RSS (MB) and CPU seconds of a process and every descendant (vLLM's server runs in a session
    of its own, so neither its process group nor this process's reaped-children times see it), sampled every
    0.2 s in a thread; a process's last sample counts (it loses at most 0.2 s when it ends in between)."""

    def __init__(self, pid: int) -> None:
        self.root, self.peak_mb, self.cpu, self.stop = psutil.Process(pid), 0.0, {}, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        rss = 0
        for p in procs:
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    self.cpu[p.pid] = t.user + t.system
            except psutil.Error:
                continue
        self.peak_mb = max(self.peak_mb, rss / 2**20)

    def _loop(self) -> None:
        while not self.stop.wait(0.2):
            self._sample()

    def close(self) -> float:
        self.stop.set()
        self.thread.join()
        return round(self.peak_mb, 1)

    def cpu_s(self) -> float:
        return sum(self.cpu.values())


OUT = REPO / "results" / "perf" / "backend-run.json"
BACKENDS = ("transformers", "vllm")
VARIANTS = ("base", "rag", "oracle")
DUMP = Path(
    os.environ.get("PTWIKI_SAMPLE", str(REPO.parent / "shared" / "corpora" / "ptwiki-sample.xml.bz2"))
)


def _bench(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


def settings(work: Path, n: int) -> list[str]:
    return [
        f"corpus={work / 'corpus.xml.bz2'}",
        f"questions={REPO / 'questions' / 'ptwiki-facts.jsonl'}",
        "split=test",
        "sample=stratified",
        f"limit={n}",
        f"variants={','.join(VARIANTS)}",
    ]


def prepare(work: Path, n: int) -> None:
    """The corpus, articles and index: built once, untimed."""
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "corpus.xml.bz2").exists():
        subprocess.run(
            _bench("questions", "corpus", "--questions", str(REPO / "questions" / "ptwiki-facts.jsonl"),
                   "--dump", str(DUMP), "--split", "test", "--limit", str(n), "--sample", "stratified",
                   "--distractors", "200", "-o", str(work / "corpus.xml.bz2") ),
            cwd=REPO, check=True,
        )  # fmt: skip
    sets = [a for s in settings(work, n) for a in ("--set", s)]
    subprocess.run(_bench("index", "--profile", "default", *sets), cwd=REPO, check=True)


def timed_run(work: Path, n: int, backend: str, seen: list[TreeUsage]) -> dict[str, Any]:
    out = work / f"run-{backend}-{int(time.time())}"
    sets = [a for s in [*settings(work, n), f"model.backend={backend}"] for a in ("--set", s)]
    cmd = _bench("run", "--profile", "default", *sets, "-o", str(out))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
    usage = TreeUsage(proc.pid)
    seen.append(usage)
    code = proc.wait()
    wall = time.perf_counter() - t0
    peak = usage.close()
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {code}")
    scores = read_json(out / "scores.json")
    variants = {
        v: {k: scores["variants"][v].get(k) for k in ("exact_match", "contains", "latency_p50_ms", "failed")}
        for v in VARIANTS
    }
    answers = {(r["variant"], r["question_id"]): r["answer"] for r in iter_jsonl(out / "answers.jsonl")}
    return {"wall_s": round(wall, 1), "peak_rss_mb": peak, "variants": variants, "answers": answers,
            "generator": (scores.get("env") or {}).get("generator")}  # fmt: skip


def run_bench(n: int = 120, work: Path | None = None) -> dict[str, Any]:
    work = work or Path(os.environ.get("PERF_RUN_WORK", "/tmp/ptwiki-backend-run"))
    prepare(work, n)
    seen: list[TreeUsage] = []
    probe = MachineProbe(own_cpu=lambda: sum(u.cpu_s() for u in seen)).__enter__()
    runs = {b: timed_run(work, n, b, seen) for b in BACKENDS}
    ref, got = runs["transformers"].pop("answers"), runs["vllm"].pop("answers")
    identical = {
        v: sum(ref[k] == got.get(k) for k in ref if k[0] == v) / max(1, sum(k[0] == v for k in ref))
        for v in VARIANTS
    }
    doc = {
        "n_questions": n,
        "questions": "questions/ptwiki-facts.jsonl, split test, stratified",
        "variants": list(VARIANTS),
        "backends": runs,
        "identical": identical,
        "speedup": round(runs["transformers"]["wall_s"] / runs["vllm"]["wall_s"], 2),
        "machine": probe.record(),
    }
    atomic_write_json(OUT, doc)
    return doc


@pytest.mark.perf
@pytest.mark.skipif(not Config().path(Config().vllm.python).exists(), reason="make install EXTRAS=vllm")
def test_whole_run_vllm_vs_transformers() -> None:
    doc = run_bench(int(os.environ.get("PERF_RUN_N", "120")))
    for b in BACKENDS:
        assert all(not v["failed"] for v in doc["backends"][b]["variants"].values()), b


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    result = run_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 120)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
