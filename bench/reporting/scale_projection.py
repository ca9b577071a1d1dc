"""docs/scale.md's projection to all of ptwiki, rendered from committed single-process measurements
(``results/perf/full-profile.json``, ``train-speed.json``, ``backend-run.json``): each stage's work for all
of ptwiki divided by its measured one-process CPU rate, then by 8 and 32 processes as if the work split
perfectly. A projection, not a measurement: nothing here ran on a GPU or on several processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.config_sections import IndexConfig
from bench.io import read_json
from bench.reporting.perf_tables import fmt_int
from bench.reporting.scale_tables import machine_label
from bench.reporting.tables import DASH, fmt_num, table

PROCESSES = (1, 8, 32)  # one process, one node of 8 GPUs, four such nodes
QUESTIONS = 10_000  # a question set for the generation row (answers = questions x the run's variants)


def _rate(work: Any, seconds: Any) -> float | None:
    ok = isinstance(work, int | float) and isinstance(seconds, int | float) and seconds > 0
    return float(work) / float(seconds) if ok else None


def duration(seconds: float | None) -> str:
    """``3.2 h`` / ``1.3 days`` / ``45 min``."""
    if seconds is None:
        return DASH
    if seconds < 60:
        return f"{fmt_num(seconds, 0)} s"
    if seconds < 3600:
        return f"{fmt_num(seconds / 60, 0)} min"
    if seconds < 2 * 86400:
        return f"{fmt_num(seconds / 3600, 1)} h"
    return f"{fmt_num(seconds / 86400, 1)} days"


def stage_rows(full: dict[str, Any], train: dict[str, Any], gen: dict[str, Any]) -> list[dict[str, Any]]:
    """Per stage: label, work (amount and unit) for all of ptwiki, measured one-process rate (per second)."""
    st, pr = full.get("stages") or {}, full.get("projection") or {}
    ingest, sparse, dense = (
        st.get("ingest") or {},
        st.get("index_sparse_all") or {},
        st.get("index_dense_slice") or {},
    )
    chunks, ic = pr.get("ptwiki_chunks"), IndexConfig()
    new_tokens = ic.chunk_tokens - ic.chunk_overlap
    tok_rates = [v for v in (train.get("tokens_per_s") or {}).values() if isinstance(v, int | float)]
    best = (gen.get("backends") or {}).get("vllm") or {}
    n_variants = len(best.get("variants") or {})
    answers = (gen.get("n_questions") or 0) * n_variants
    tokens = chunks * new_tokens if isinstance(chunks, int | float) else None
    rows = [
        ("ingest (not split over ranks: `--workers` on one machine)", pr.get("ptwiki_articles"), "articles",
         _rate(ingest.get("articles"), ingest.get("seconds"))),
        ("index, BM25 only", chunks, "chunks", _rate(sparse.get("chunks"), sparse.get("seconds"))),
        (f"index, dense + BM25 (`{dense.get('embedder', DASH)}`)", chunks, "chunks",
         dense.get("chunks_per_s")),
        (f"fine-tune, one epoch (chunks × {new_tokens} new tokens)", tokens, "tokens",
         max(tok_rates) if tok_rates else None),
        (f"answers, {fmt_int(QUESTIONS)} questions × {n_variants} variants (vllm)", QUESTIONS * n_variants,
         "answers", _rate(answers, best.get("wall_s"))),
    ]  # fmt: skip
    return [
        {"label": r[0], "work": r[1], "unit": r[2], "rate": r[3], "splits": i > 0} for i, r in enumerate(rows)
    ]


def render_ptwiki_projection(docs: dict[str, dict[str, Any]]) -> str:
    full = docs.get("full-profile") or {}
    rows = []
    for r in stage_rows(full, docs.get("train-speed") or {}, docs.get("backend-run") or {}):
        one = _rate(r["work"], r["rate"])  # seconds for one process: work / rate
        rows.append(
            [r["label"], f"{fmt_int(r['work'])} {r['unit']}", f"{fmt_num(r['rate'], 1)} {r['unit']}/s"]
            + [duration(one / n if one is not None and (n == 1 or r["splits"]) else None) for n in PROCESSES]
        )
    pr = full.get("projection") or {}
    head = ["stage", "work for all of ptwiki", "measured rate, one bench process on that CPU"]
    head += [f"{n} process{'es' if n > 1 else ''}" for n in PROCESSES]
    lines = [
        f"**Projection, not measured on a GPU** (nor on several processes): all of ptwiki ≈ "
        f"{fmt_int(pr.get('ptwiki_articles'))} articles × {fmt_num(pr.get('chunks_per_article'), 2)} chunks "
        f"per article ≈ {fmt_int(pr.get('ptwiki_chunks'))} chunks, each stage at its measured single-process "
        f"CPU rate; {machine_label(full)}. The process columns divide by 1, 8 and 32 as if the work split "
        "perfectly (the shards are disjoint, so it nearly does until a shared resource — the Qdrant "
        "cluster, the filesystem — saturates). A GPU process is many times faster than these CPU rates: "
        "measure one GPU process first, then multiply.",
        "",
        table(head, rows),
    ]
    return "\n".join(lines) + "\n"


INPUTS = ("full-profile", "train-speed", "backend-run")


def load(perf_dir: Path) -> tuple[Path, str] | None:
    """The docs block's (source, body) from ``perf_dir`` (None without the full-profile measurement)."""
    if not (perf_dir / "full-profile.json").exists():
        return None
    docs = {n: read_json(perf_dir / f"{n}.json") for n in INPUTS if (perf_dir / f"{n}.json").exists()}
    return perf_dir / "{full-profile,train-speed,backend-run}.json", render_ptwiki_projection(docs)
