"""Index performance: build throughput vs plain encoding, retrieval latency and memory at 100k points.

Run: ``.venv/bin/python -m pytest tests/perf -m perf -s``. Competitors run back to back in the same process;
ratios are what to compare (the machine is shared, absolute timings are noisy).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.config import load_config
from bench.io import current_rss_mb
from bench.retrieval import index
from bench.retrieval.chunking import Chunker
from bench.retrieval.embedders import make_embedder
from bench.retrieval.store import EdgeStore, point_id

pytestmark = pytest.mark.perf
REPO = Path(__file__).resolve().parents[2]
N_POINTS = int(os.environ.get("PERF_POINTS", "100000"))
DIM = 384
log = logging.getLogger(__name__)


def _subset(tmp: Path, n_articles: int) -> Path:
    from bench.ingest.corpus import iter_corpus

    out = tmp / "articles.jsonl"
    rows = [a.to_dict() for a in iter_corpus([REPO / "corpora" / "faquad.xml"], limit=n_articles)]
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return out


def test_build_throughput_vs_plain_encode(tmp_path: Path, benchmark: Any) -> None:
    corpus = _subset(tmp_path, 6)
    cfg = load_config("faquad", [f"corpus={corpus}", f"results_dir={tmp_path / 'res'}"])
    emb = make_embedder(cfg)
    from bench.retrieval.index import index_articles

    chunks = list(Chunker(cfg.index.chunk_tokens, cfg.index.chunk_overlap).iter_chunks(index_articles(cfg)))
    texts = [c.embed_text() for c in chunks]
    emb.embed_passages(texts[:4])  # warm-up
    bs = cfg.index.embed_batch_size * 4
    t0 = time.perf_counter()
    for i in range(0, len(texts), bs):
        emb.embed_passages(texts[i : i + bs])
    t_encode = time.perf_counter() - t0

    def build() -> index.IndexInfo:
        shutil.rmtree(tmp_path / "res", ignore_errors=True)
        return index.build_index(cfg)

    info = benchmark.pedantic(build, rounds=1, iterations=1)
    t_build = benchmark.stats.stats.mean
    ratio = t_encode / t_build
    benchmark.extra_info.update(chunks=len(texts), encode_s=t_encode, build_s=t_build, ratio=ratio)
    print(f"\n{len(texts)} chunks: encode {t_encode:.2f} s, build_index {t_build:.2f} s, ratio {ratio:.3f}")
    assert info.points_new == len(texts)
    assert ratio >= 0.8  # goal 0.9; 0.8 leaves room for noise on a shared machine


@pytest.fixture(scope="module")
def big_store(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EdgeStore, np.ndarray, float, Path]]:
    path = tmp_path_factory.mktemp("big") / "idx"
    rng = np.random.default_rng(0)
    rss0 = current_rss_mb()
    store = EdgeStore(path, exact=True)
    store.open({"embedder": "random", "dim": DIM}, DIM)
    for start in range(0, N_POINTS, 2000):
        n = min(2000, N_POINTS - start)
        vecs = rng.standard_normal((n, DIM), dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        ids = [point_id(start + i, 0) for i in range(n)]
        payloads = [
            {
                "chunk_id": f"{start + i}-0",
                "article_id": start + i,
                "title": f"T{start + i}",
                "section": "",
                "text": "x" * 200,
            }
            for i in range(n)
        ]
        store.upsert(ids, vecs, [([1], [1.0])] * n, payloads)
    store.flush()
    queries = rng.standard_normal((200, DIM), dtype=np.float32)
    yield store, queries, current_rss_mb() - rss0, path
    store.close()


def _latencies(store: EdgeStore, queries: np.ndarray, k: int = 5) -> np.ndarray:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        res = store.query(q, None, "dense", k)
        out.append((time.perf_counter() - t0) * 1000)
        assert len(res) == k
    return np.array(out)


def _du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def test_retrieval_latency_100k(big_store: tuple[EdgeStore, np.ndarray, float, Path], benchmark: Any) -> None:
    store, queries, rss_mb, path = big_store
    assert store.count() == N_POINTS
    _latencies(store, queries[:10])  # warm-up
    lat_exact = benchmark.pedantic(_latencies, args=(store, queries), rounds=1, iterations=1)
    # HNSW: build the graph (optimize) and query with hnsw_ef
    t0 = time.perf_counter()
    store._shard.optimize()
    t_opt = time.perf_counter() - t0
    import qdrant_edge as qe

    store._params = qe.SearchParams(hnsw_ef=128)
    _latencies(store, queries[:10])
    lat_hnsw = _latencies(store, queries)
    stats = {
        "points": N_POINTS,
        "exact_p50_ms": float(np.percentile(lat_exact, 50)),
        "exact_p95_ms": float(np.percentile(lat_exact, 95)),
        "hnsw_p50_ms": float(np.percentile(lat_hnsw, 50)),
        "hnsw_p95_ms": float(np.percentile(lat_hnsw, 95)),
        "hnsw_build_s": t_opt,
        "rss_delta_mb": rss_mb,
        "disk_mb": _du_mb(path),
    }
    benchmark.extra_info.update(stats)
    print("\n" + json.dumps(stats, indent=1))
    assert stats["hnsw_p95_ms"] < 20
