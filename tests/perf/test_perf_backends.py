"""transformers (bf16, sdpa) vs llama.cpp (GGUF) on the same FaQuAD questions, back to back in one process.

Closed book and with the gold ``context`` in the prompt, built by the harness's own reader
(:func:`bench.core.prompts.build_messages`: the default profile's reader and worked examples), greedy, the
default
profile's answer length and newline stop; seconds per question, new tokens per second, and the rate of
identical answers (after whitespace strip). Results go to ``results/perf/backends.json`` with the machine
record (:mod:`bench.core.machine`), which README's ``backends`` block renders. The assertion is
the reason the profiles default to transformers: with context it must not be slower than llama.cpp here.

Run as a test: ``.venv/bin/python -m pytest tests/perf/test_perf_backends.py -m perf -s``
or as a script: ``.venv/bin/python tests/perf/test_perf_backends.py [N_QUESTIONS]`` (default 15;
``PERF_BACKENDS_N`` sets it for the test).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.config import Config, ModelConfig, load_config  # noqa: E402
from bench.core.machine import MachineProbe  # noqa: E402
from bench.core.prompts import build_messages, format_passage  # noqa: E402
from bench.generation.base import Generator  # noqa: E402
from bench.generation.registry import make_generator  # noqa: E402
from bench.io import atomic_write_json  # noqa: E402

MODEL = "qwen2.5-coder-0.5b"
DEFAULT = load_config("faquad").model
MAX_NEW = DEFAULT.max_new_tokens
OUT = REPO / "results" / "perf" / "backends.json"


def load_questions(n: int) -> list[dict[str, Any]]:
    lines = (REPO / "questions" / "smoke.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()][:n]


def messages(q: dict[str, Any], with_context: bool) -> list[dict[str, str]]:
    passages = [format_passage(q["context"], q.get("title") or "")] if with_context else []
    return build_messages(q["question"], passages, reader=DEFAULT.reader, fewshot=DEFAULT.fewshot)


def _run(gen: Generator, qs: list[dict[str, Any]], with_context: bool) -> dict[str, Any]:
    gen.generate(messages(qs[0], with_context), 2)  # warm-up (allocations, thread pools)
    t0 = time.perf_counter()
    outs = [gen.generate(messages(q, with_context), MAX_NEW) for q in qs]
    wall = time.perf_counter() - t0
    new = sum(g.new_tokens for g in outs)
    return {
        "s_per_question": wall / len(qs),
        "new_tokens_per_s": new / sum(g.total_ms / 1000 for g in outs),
        "ttft_ms_mean": sum(g.ttft_ms for g in outs) / len(outs),
        "prompt_tokens_mean": sum(g.prompt_tokens for g in outs) / len(outs),
        "errors": sum(g.error is not None for g in outs),
        "answers": [g.text for g in outs],
    }


def run_bench(n: int = 15, threads: int = 0) -> dict[str, Any]:
    probe = MachineProbe().__enter__()  # loading and both modes: the whole measurement
    qs = load_questions(n)
    gens: dict[str, Generator] = {}
    for backend in ("transformers", "llamacpp"):
        cfg = Config(
            model=ModelConfig(
                name=MODEL,
                backend=backend,
                dtype="bfloat16",
                threads=threads,
                stop_at_newline=DEFAULT.stop_at_newline,
                batch_size=1,
            )
        )
        gens[backend] = make_generator(cfg)
    result: dict[str, Any] = {
        "n_questions": len(qs),
        "max_new_tokens": MAX_NEW,
        "cpu_count": os.cpu_count(),
        "info": {b: g.info() for b, g in gens.items()},
    }
    for mode, ctx in (("closed_book", False), ("with_context", True)):
        row = {b: _run(g, qs, ctx) for b, g in gens.items()}  # back to back, same process
        a, b = row["transformers"]["answers"], row["llamacpp"]["answers"]
        row["agreement"] = sum(x.strip() == y.strip() for x, y in zip(a, b, strict=True)) / len(a)
        row["speedup_llamacpp"] = row["transformers"]["s_per_question"] / row["llamacpp"]["s_per_question"]
        result[mode] = row
    for g in gens.values():
        g.close()
    result["machine"] = probe.record()
    atomic_write_json(OUT, result)
    return result


def _models_available() -> bool:
    try:
        from bench.generation import models

        models.gguf_file(Config())
        return True
    except Exception:
        return False


@pytest.mark.perf
@pytest.mark.skipif(not _models_available(), reason=f"{MODEL} weights not installed")
def test_llamacpp_vs_transformers() -> None:
    res = run_bench(int(os.environ.get("PERF_BACKENDS_N", "15")))
    for mode in ("closed_book", "with_context"):
        row = res[mode]
        print(mode, {k: v for k, v in row.items() if k not in ("transformers", "llamacpp")})
        for b in ("transformers", "llamacpp"):
            assert row[b]["errors"] == 0
            assert row[b]["new_tokens_per_s"] > 0

    assert res["info"]["transformers"]["quantization"] == "bfloat16"
    # the profiles' default backend: with a context in the prompt, not slower than llama.cpp on this CPU
    assert res["with_context"]["speedup_llamacpp"] <= 1.0, res["with_context"]["speedup_llamacpp"]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    out = run_bench(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
    print(json.dumps({k: v for k, v in out.items() if k != "info"}, ensure_ascii=False, indent=1))
