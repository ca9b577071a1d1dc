"""transformers (the default: batches of ``model.batch_size``) vs vllm (every question at once) on the same
FaQuAD dev questions, closed book and with the gold passage, in one process tree (vLLM's engine is a child).

Per backend and mode: wall seconds, new tokens per second, engine start (transformers: model load; vllm:
server start until ``/health``), peak RSS (transformers: this process; vllm: the engine's process group,
sampled), exact match against the gold answers, and the share of answers identical to transformers'. Written
to ``results/perf/vllm.json`` with the machine record; docs/backends.md's ``vllm`` block renders it
(:func:`bench.reporting.vllm_tables.render_vllm`; the GPU row says "not measured yet" until a ``gpu`` entry).

Needs ``make install EXTRAS=vllm``. Run as a test: ``.venv/bin/python -m pytest tests/perf/test_perf_vllm.py
-m perf -s`` or as a script: ``.venv/bin/python tests/perf/test_perf_vllm.py [N_QUESTIONS]`` (default: all 63
dev questions; ``PERF_VLLM_N`` sets it for the test). On a CUDA machine set ``PERF_VLLM_DEVICE=cuda``: the
result then goes under ``gpu`` in the same JSON, beside the CPU one.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.config import Config, load_config  # noqa: E402
from bench.core.machine import MachineProbe  # noqa: E402
from bench.core.metrics import exact_match  # noqa: E402
from bench.core.prompts import build_messages, format_passage  # noqa: E402
from bench.generation.registry import make_generators  # noqa: E402
from bench.io import atomic_write_json, read_json  # noqa: E402

OUT = REPO / "results" / "perf" / "vllm.json"
MODES = (("closed_book", False), ("with_context", True))
BACKENDS = ("transformers", "vllm")


def load_dev(n: int) -> list[dict[str, Any]]:
    lines = (REPO / "questions" / "faquad.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    dev = [r for r in rows if r.get("split") == "dev"]
    return (dev or rows)[: n or None]


def messages(cfg: Config, q: dict[str, Any], with_context: bool) -> list[dict[str, str]]:
    passages = [format_passage(q["context"], q.get("title") or "")] if with_context else []
    return build_messages(q["question"], passages, reader=cfg.model.reader, fewshot=cfg.model.fewshot)


class GroupRss:
    """Peak summed RSS (MB) of every process in a process group, sampled every 0.2 s in a thread."""

    def __init__(self, pgid: int) -> None:
        self.pgid, self.peak_mb, self.stop = pgid, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _sample(self) -> float:
        total = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if os.getpgid(int(pid)) != self.pgid:
                    continue
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except (OSError, ValueError):
                continue
        return total / 1024

    def _loop(self) -> None:
        while not self.stop.wait(0.2):
            self.peak_mb = max(self.peak_mb, self._sample())

    def close(self) -> float:
        self.stop.set()
        self.thread.join()
        return round(self.peak_mb, 1)


def _answers(
    gen: Any, cfg: Config, qs: list[dict[str, Any]], ctx: bool, whole: bool
) -> tuple[list[Any], float]:
    batch = [messages(cfg, q, ctx) for q in qs]
    size = len(batch) if whole else max(1, cfg.model.batch_size)
    t0 = time.perf_counter()
    outs = [
        g
        for i in range(0, len(batch), size)
        for g in gen.generate_batch(batch[i : i + size], cfg.model.max_new_tokens)
    ]
    return outs, time.perf_counter() - t0


def run_backend(backend: str, qs: list[dict[str, Any]], device: str) -> dict[str, Any]:
    cfg = load_config("faquad", [f"model.backend={backend}", f"device={device}"])
    t0 = time.perf_counter()
    gen: Any = make_generators(cfg)["base"]
    rss: GroupRss | None = None
    try:
        gen.generate(messages(cfg, qs[0], False), 2)  # starts vLLM's engine; warms transformers up
        start_s = time.perf_counter() - t0
        if backend == "vllm":
            rss = GroupRss(gen.engine.server.proc.pid)
        out: dict[str, Any] = {"engine_start_s": round(start_s, 1), "info": gen.info()}
        for mode, ctx in MODES:
            outs, wall = _answers(gen, cfg, qs, ctx, whole=backend == "vllm")
            new = sum(g.new_tokens for g in outs)
            out[mode] = {
                "wall_s": round(wall, 2),
                "new_tokens_per_s": round(new / wall, 2) if wall else None,
                "errors": sum(g.error is not None for g in outs),
                "em": sum(exact_match(g.text, q["answers"]) for g, q in zip(outs, qs, strict=True)) / len(qs),
                "answers": [g.text for g in outs],
            }
    finally:
        gen.close()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["peak_rss_mb"] = rss.close() if rss is not None else round(own, 1)
    return out


def run_bench(n: int = 0, device: str = "cpu") -> dict[str, Any]:
    probe = MachineProbe().__enter__()
    qs = load_dev(n)
    rows = {b: run_backend(b, qs, device) for b in BACKENDS}  # transformers first: its RSS is this process's
    for mode, _ in MODES:
        ref = rows["transformers"][mode]["answers"]
        got = rows["vllm"][mode]["answers"]
        rows["vllm"][mode]["identical"] = sum(a == b for a, b in zip(ref, got, strict=True)) / len(qs)
    result = {"n_questions": len(qs), "max_new_tokens": load_config("faquad").model.max_new_tokens, **rows}
    result["machine"] = probe.record()
    doc: dict[str, Any] = read_json(OUT) if OUT.exists() else {}
    if device.startswith("cuda"):
        doc["gpu"] = result
    else:
        doc = {**result, **({"gpu": doc["gpu"]} if "gpu" in doc else {})}
    atomic_write_json(OUT, doc)
    return result


def _vllm_installed() -> bool:
    return Config().path(Config().vllm.python).exists()


@pytest.mark.perf
@pytest.mark.skipif(not _vllm_installed(), reason="vLLM's virtualenv missing: make install EXTRAS=vllm")
def test_vllm_vs_transformers() -> None:
    res = run_bench(int(os.environ.get("PERF_VLLM_N", "0")), os.environ.get("PERF_VLLM_DEVICE", "cpu"))
    for mode, _ in MODES:
        for b in BACKENDS:
            assert res[b][mode]["errors"] == 0, (b, mode)
            assert res[b][mode]["new_tokens_per_s"] > 0
        print(mode, {b: {k: v for k, v in res[b][mode].items() if k != "answers"} for b in BACKENDS})
    assert res["vllm"]["info"]["prefix_caching"] is True


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    out = run_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 0, os.environ.get("PERF_VLLM_DEVICE", "cpu"))
    print(json.dumps({b: {m: {k: v for k, v in out[b][m].items() if k != "answers"} for m, _ in MODES}
                      for b in BACKENDS}, indent=1))  # fmt: skip
