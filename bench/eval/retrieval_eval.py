"""Retrieval evaluation over the question set: recall@k, answer-in-context@k and MRR for each retrieval mode
the index supports (dense, sparse, hybrid), read through :func:`bench.retrieval.index.open_retriever`."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

from bench.config import Config
from bench.core.metrics import answer_in_context_at_k, recall_at_k, reciprocal_rank
from bench.questions.load import load_questions
from bench.retrieval.index import open_retriever
from bench.retrieval.store import MODES

EVAL_DEPTH = 10  # MRR is computed over the top max(k, 10) hits


def retrieval_eval(cfg: Config, client: Any = None) -> dict[str, Any]:
    """recall@k (gold title in top k), answer_in_context@k and MRR@max(k,10) for dense, sparse, hybrid."""
    rows = load_questions(cfg, require=("title",))
    k = cfg.index.k
    depth = max(k, EVAL_DEPTH)
    out: dict[str, Any] = {}
    with open_retriever(cfg, client) as r:
        modes = MODES if r.embedder is not None else ("sparse",)  # a sparse-only index
        sums = {m: [0.0, 0.0, 0.0] for m in modes}
        for row in tqdm(rows, desc="retrieve-eval", unit="q", disable=None):
            q = str(row["question"])
            dense = r.embedder.embed_query(q) if r.embedder is not None else None
            sparse = r.bm25.query(q)
            for mode in modes:
                res = r.store.query(
                    dense if mode != "sparse" else None, sparse if mode != "dense" else None, mode, depth
                )
                titles = [str(p["title"]) for _, p in res]
                texts = [str(p["text"]) for _, p in res]
                s = sums[mode]
                s[0] += recall_at_k(titles, str(row["title"]), k)
                s[1] += answer_in_context_at_k(texts, list(row["answers"]), k)
                s[2] += reciprocal_rank(titles, str(row["title"]))
        n = len(rows)
        for mode in modes:
            s = sums[mode]
            out[mode] = {f"recall@{k}": s[0] / n, f"answer_in_context@{k}": s[1] / n, "mrr": s[2] / n}
        out["n"] = n
        out["embedder"] = r.embedder.name if r.embedder is not None else None
        out["mrr_depth"] = depth
    return out
