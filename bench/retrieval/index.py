"""Build the RAG index (chunk → embed → Qdrant) and retrieve from it (scored in bench.eval.retrieval_eval).

The embedded index lives in ``results/index/<key>/``, the index artifact key (:func:`bench.artifacts.index`:
the articles key, chunking, embedder + weights + code, storage; no embedder for a sparse-only index). Point
ids are uuid5(article id, chunk number): a killed run resumes where it stopped and a rerun writes 0 new
points.
``manifest.json`` is written last; its presence means the index is complete.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bench import artifacts
from bench.config import BenchError, Config
from bench.io import atomic_write_json, crash_point
from bench.retrieval.bm25 import Bm25Encoder
from bench.retrieval.chunking import ArticleLike, Chunk, Chunker
from bench.retrieval.embedders import Embedder, make_embedder
from bench.retrieval.store import MODES, EdgeStore, VectorStore, point_id

log = logging.getLogger(__name__)


@dataclass
class Hit:
    chunk_id: str
    article_id: int
    title: str
    section: str
    text: str
    score: float


@dataclass
class IndexInfo:
    path: Path
    points_total: int
    points_new: int
    chunks: int
    seconds: float
    location: str = ""
    stats: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return (
            f"index {self.path}: {self.points_total} points ({self.points_new} new points), "
            f"{self.chunks} chunks, {self.seconds:.1f} s"
            + (f", store {self.location}" if self.location and self.location != str(self.path) else "")
        )


def index_articles(cfg: Config) -> Iterator[ArticleLike]:
    """The articles artifact's articles; a repeated article id is an error (point ids are (article id,
    chunk n), so a second page with the same id would silently overwrite the first one's chunks)."""
    from bench.ingest.corpus import corpus_articles

    seen: set[int] = set()
    for art in corpus_articles(cfg):
        if art.id in seen:
            raise BenchError(
                f"{cfg.corpus}: page {art.title!r} has article id {art.id}, already used by an earlier page "
                "(pages without <id> get -1); give every page a unique <id>"
            )
        seen.add(art.id)
        yield art


def index_identity(cfg: Config) -> tuple[Path, dict[str, Any], list[dict[str, str]]]:
    """(index directory named by the artifact key, collection signature, corpus files with sha256)."""
    ic = cfg.index
    signature = {
        "embedder": ic.embedder if artifacts.dense_enabled(cfg) else None,
        "embedder_model": ic.embedder_model if artifacts.dense_enabled(cfg) else None,
        "chunk_tokens": ic.chunk_tokens,
        "chunk_overlap": ic.chunk_overlap,
    }
    return artifacts.index(cfg).path, signature, artifacts.corpus_identity(cfg)


def embed_batches(it: Iterator[Chunk], size: int) -> Iterator[list[Chunk]]:
    while batch := list(islice(it, size)):
        yield batch


def upsert_batch(store: Any, emb: Any, bm25: Bm25Encoder, batch: list[Any]) -> int:
    """Embed and upsert the chunks of ``batch`` the store lacks (dense when ``emb``, BM25 always); returns how
    many were new. The one-process and the sharded build (:mod:`bench.retrieval.index_shards`) share it."""
    ids = [point_id(c.article_id, c.n) for c in batch]
    have = store.existing(ids)
    todo = [(pid, c) for pid, c in zip(ids, batch, strict=True) if pid not in have]
    if todo:
        texts = [c.embed_text() for _, c in todo]
        dense = emb.embed_passages(texts) if emb else None
        sparse = [bm25.document(t) for t in texts]
        store.upsert([pid for pid, _ in todo], dense, sparse, [_payload(c) for _, c in todo])
    return len(todo)


def _payload(c: Chunk) -> dict[str, Any]:
    p = c.to_payload()
    p["metadata"] = {k: v for k, v in p.items() if k != "text"}  # where langchain-qdrant looks for it
    return p


def index_embedder(cfg: Config, sig: dict[str, Any]) -> tuple[Embedder | None, dict[str, Any], int]:
    """(embedder or None for a sparse-only index, the collection signature with it, dense dim or 0)."""
    emb = make_embedder(cfg) if artifacts.dense_enabled(cfg) else None  # sparse-only: embed nothing
    dim = emb.dim if emb else 0
    return emb, {**sig, "embedder_name": emb.name if emb else None, "dim": dim}, dim


def _build(
    cfg: Config, store: VectorStore, path: Path, sig: dict[str, Any], files: list[dict[str, str]]
) -> IndexInfo:
    t0 = time.perf_counter()
    emb, full_sig, dim = index_embedder(cfg, sig)
    chunker = Chunker(cfg.index.chunk_tokens, cfg.index.chunk_overlap)
    stats: dict[str, int] = {}
    chunks = chunker.iter_chunks(index_articles(cfg), stats)
    first = next(chunks, None)
    if first is None:
        raise BenchError(f"corpus {cfg.corpus} has no article with text: nothing to index")
    store.open(full_sig, dim)
    bm25 = Bm25Encoder()
    new = 0
    # a log file gets a line every 30 s (an hour-long build is not silent); a terminal the live bar
    bar = tqdm(desc="index", unit="chunk", mininterval=0.1 if sys.stderr.isatty() else 30.0)
    try:
        for batch in embed_batches(chain([first], chunks), max(1, cfg.index.embed_batch_size) * 4):
            new += upsert_batch(store, emb, bm25, batch)
            crash_point("index.batch")
            bar.update(len(batch))
    finally:
        bar.close()
        store.flush()
    total = store.count()
    manifest = {
        "embedder": emb.name if emb else None,
        "dim": dim,
        "signature": sig,
        "chunking": {"chunk_tokens": cfg.index.chunk_tokens, "chunk_overlap": cfg.index.chunk_overlap},
        "corpus": files,
        "store": store.location,
        "counts": {**stats, "points": total},
        # the cost of the build that completed the index (a resumed build counts only its own part)
        "build": {"seconds": round(time.perf_counter() - t0, 1), "embedded_chunks": new if emb else 0},
    }
    atomic_write_json(path / "manifest.json", manifest)
    info = IndexInfo(
        path, total, new, stats.get("chunks", 0), time.perf_counter() - t0, store.location, stats
    )
    log.info("%s", info.summary())
    return info


def _manifest_ok(path: Path, store: VectorStore, sig: dict[str, Any]) -> dict[str, Any] | None:
    mf = path / "manifest.json"
    if not mf.exists():
        return None
    manifest: dict[str, Any] = json.loads(mf.read_text("utf-8"))
    if manifest.get("signature") != sig or manifest.get("store") != store.location:
        return None
    return manifest


def build_index(cfg: Config, client: Any = None) -> IndexInfo:
    """Chunk, embed and upsert the corpus; only missing points are embedded (resumable, idempotent)."""
    path, sig, files = index_identity(cfg)
    store = open_store(cfg, path, client)
    try:
        return _build(cfg, store, path, sig, files)
    finally:
        store.close()


class Retriever:
    """An open index: load once, then :meth:`search` many questions."""

    def __init__(self, cfg: Config, store: VectorStore, embedder: Embedder | None, path: Path) -> None:
        self.cfg, self.store, self.embedder, self.path = cfg, store, embedder, path
        self.bm25 = Bm25Encoder()

    def search(
        self, query: str, k: int | None = None, mode: str | None = None, article_id: int | None = None
    ) -> list[Hit]:
        """The top ``k`` chunks for ``query`` (of article ``article_id`` only, when given)."""
        mode = mode or self.cfg.index.retrieval
        if mode not in MODES:
            raise BenchError(f"unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}")
        k = k or self.cfg.index.k
        if mode != "sparse" and self.embedder is None:
            raise BenchError(
                f"index {self.path} has no dense vectors (built with index.retrieval = 'sparse'); "
                f"{mode} retrieval needs --set index.retrieval={mode} (which embeds every chunk)"
            )
        dense = self.embedder.embed_query(query) if mode != "sparse" and self.embedder else None
        sparse = self.bm25.query(query) if mode != "dense" else None
        return [
            Hit(
                str(p["chunk_id"]),
                int(p["article_id"]),
                str(p["title"]),
                str(p["section"]),
                str(p["text"]),
                score,
            )
            for score, p in self.store.query(dense, sparse, mode, k, article_id)
        ]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Retriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_retriever(cfg: Config, client: Any = None) -> Retriever:
    """Open the index for ``cfg``, building it first (with a log line) when it is missing or incomplete."""
    path, sig, files = index_identity(cfg)
    store = open_store(cfg, path, client)
    emb, full_sig, dim = index_embedder(cfg, sig)
    manifest = _manifest_ok(path, store, sig)
    if manifest is not None:
        store.open(full_sig, dim)
    if manifest is None or store.count() != manifest["counts"]["points"]:
        log.info("index %s missing or incomplete: building it now", path)
        _build(cfg, store, path, sig, files)
    return Retriever(cfg, store, emb, path)


def retrieve(cfg: Config, query: str, k: int | None = None, mode: str | None = None) -> list[Hit]:
    with open_retriever(cfg) as r:
        return r.search(query, k, mode)


def open_store(cfg: Config, path: Path, client: Any = None) -> VectorStore:
    """Server store when ``index.qdrant_url`` is set or a client is injected, else embedded under path."""
    if client is not None or cfg.index.qdrant_url:
        from bench.retrieval.store_server import ServerStore

        return ServerStore(cfg, client, key=path.name)
    ic = cfg.index
    return EdgeStore(path, ic.exact, ic.hnsw_ef, ic.dense_int8, ic.dense_on_disk)
