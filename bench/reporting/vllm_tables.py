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


RUN_VARIANTS = ("base", "rag", "oracle")
RUN_HEADER = ["backend", "wall s (whole `bench run`)", "peak RSS MB", *[f"{v} EM" for v in RUN_VARIANTS],
              *[f"{v} p50 ms" for v in RUN_VARIANTS]]  # fmt: skip


def render_backend_run(doc: dict[str, Any]) -> str:
    """docs/backends.md's ``backend-run`` block, from ``results/perf/backend-run.json``
    (tests/perf/test_perf_backend_run.py): one whole ``bench run`` per backend, engine start included."""
    variants = doc.get("variants") or list(RUN_VARIANTS)
    rows = []
    for name, r in (doc.get("backends") or {}).items():
        vs = r.get("variants") or {}
        rows.append([f"`{name}`", fmt_num(r.get("wall_s"), 1), fmt_num(r.get("peak_rss_mb"), 0),
                     *[fmt_num((vs.get(v) or {}).get("exact_match"), 3) for v in variants],
                     *[fmt_num((vs.get(v) or {}).get("latency_p50_ms"), 0) for v in variants]])  # fmt: skip
    rows.append(["GPU (`vllm`, CUDA)", "not measured yet", "", *[""] * (2 * len(variants))])
    same = ", ".join(f"{v} {fmt_num(share, 2)}" for v, share in (doc.get("identical") or {}).items())
    head = (
        f"{doc.get('n_questions', DASH)} fact questions nobody had asked before "
        f"({doc.get('questions', DASH)}), variants {', '.join(variants)}; each backend one `bench run` in a "
        "child process, model load and engine start included, no answer cache. "
        f"CPU: {machine_line(doc.get('machine'))}."
    )
    tail = (
        f"vllm: **{fmt_num(doc.get('speedup'), 2)}×** the transformers backend's speed (whole run); answers "
        f"identical to transformers' per variant: {same}.\n"
    )
    return head + "\n\n" + table(RUN_HEADER, rows) + "\n" + tail
