"""docs/backends.md's ``vllm`` block, rendered from ``results/perf/vllm.json``
(tests/perf/test_perf_vllm.py): transformers vs vllm on the same questions, per mode, and a GPU row that says
"not measured yet" until the JSON has a ``gpu`` entry (the benchmark run with ``PERF_VLLM_DEVICE=cuda``)."""

from __future__ import annotations

from typing import Any

from bench.core.machine import machine_line
from bench.reporting.tables import DASH, fmt_num, table

BACKENDS = ("transformers", "vllm")
MODES = (("closed_book", "closed book"), ("with_context", "gold context"))
HEADER = ["machine", "mode", "backend", "wall s", "tokens/s", "engine start s", "peak RSS MB", "EM",
          "answers identical to transformers'"]  # fmt: skip


def _rows(doc: dict[str, Any], where: str) -> list[list[str]]:
    rows = []
    for mode, label in MODES:
        for b in BACKENDS:
            r, m = doc.get(b) or {}, (doc.get(b) or {}).get(mode) or {}
            same = fmt_num(m.get("identical"), 2) if b == "vllm" else DASH
            rows.append([where, label, b, fmt_num(m.get("wall_s"), 1), fmt_num(m.get("new_tokens_per_s"), 1),
                         fmt_num(r.get("engine_start_s"), 1), fmt_num(r.get("peak_rss_mb"), 0),
                         fmt_num(m.get("em"), 3), same])  # fmt: skip
    return rows


def _speedups(doc: dict[str, Any]) -> list[str]:
    out = []
    for mode, label in MODES:
        t = ((doc.get("transformers") or {}).get(mode) or {}).get("wall_s")
        v = ((doc.get("vllm") or {}).get(mode) or {}).get("wall_s")
        if isinstance(t, int | float) and isinstance(v, int | float) and t > 0 and v > 0:
            out.append(f"{label}: vllm {t / v:.2f}× the transformers backend's speed (wall)")
    return out


def render_vllm(doc: dict[str, Any]) -> str:
    head = (
        f"{doc.get('n_questions', DASH)} FaQuAD dev questions, greedy, "
        f"≤ {doc.get('max_new_tokens', DASH)} new tokens; transformers in batches of `model.batch_size`, "
        "vllm with every question at once; "
        f"CPU: {machine_line(doc.get('machine'))}."
    )
    rows = _rows(doc, "CPU")
    gpu = doc.get("gpu")
    if isinstance(gpu, dict):
        rows += _rows(gpu, "GPU")
        head += f" GPU: {machine_line(gpu.get('machine'))}."
    else:
        rows.append(["GPU", "both", "vllm", "not measured yet", "", "", "", "", ""])
    tail = _speedups(doc)
    body = head + "\n\n" + table(HEADER, rows).replace("|---|---:|---:|", "|---|---|---|", 1)
    return body + ("\n" + "; ".join(tail) + ".\n" if tail else "")
