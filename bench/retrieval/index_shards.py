"""``bench index`` over several processes: rank ``i`` of ``n`` chunks and embeds the articles ``i::n`` and
upserts them into one Qdrant server collection (``index.qdrant_url``; ``shard_number`` /
``replication_factor`` from the config). Point ids are (article id, chunk n), so the union of the shares is
the single-process index, point for point.

The embedded engine (qdrant-edge) has one opener at a time: it stays single-process and refuses a sharded
build. After the shares, one ordinary ``build_index`` pass (rank 0 under a launcher, or ``bench index`` run
once after ``--shard`` processes) finds every point present, embeds nothing and writes ``manifest.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from itertools import chain
from typing import Any

from bench.config import BenchError, Config
from bench.core.dist import Shard, barrier
from bench.io import atomic_write_json
from bench.retrieval.bm25 import Bm25Encoder
from bench.retrieval.chunking import Chunker
from bench.retrieval.index import (
    IndexInfo,
    build_index,
    embed_batches,
    index_articles,
    index_embedder,
    index_identity,
    open_store,
    upsert_batch,
)
from bench.retrieval.store import VectorStore

log = logging.getLogger(__name__)


def check_engine(cfg: Config, shard: Shard, client: Any = None) -> None:
    """A sharded build needs a Qdrant server; the embedded engine says so."""
    if shard.sharded and client is None and not cfg.index.qdrant_url:
        raise BenchError(
            f"bench index as shard {shard}: the embedded engine (qdrant-edge, index.qdrant_url empty) is "
            "single-process (one opener at a time). Run bench index in one process, or point "
            "index.qdrant_url at a Qdrant server or cluster for a sharded build (docs/scale.md)"
        )


def _share(cfg: Config, shard: Shard) -> Iterator[Any]:
    return (a for pos, a in enumerate(index_articles(cfg)) if pos % shard.count == shard.index)


def _open(store: VectorStore, shard: Shard, full_sig: dict[str, Any], dim: int) -> None:
    """Under a launcher rank 0 creates the collection and the others open it after (no create race)."""
    if shard.launched and shard.index != 0:
        barrier("index collection")
    store.open(full_sig, dim)
    if shard.launched and shard.index == 0:
        barrier("index collection")


def _upsert(store: VectorStore, emb: Any, chunks: Iterator[Any], batch: int) -> int:
    bm25 = Bm25Encoder()
    return sum(upsert_batch(store, emb, bm25, part) for part in embed_batches(chunks, batch))


def build_shard(cfg: Config, shard: Shard, client: Any = None) -> IndexInfo:
    """Chunk, embed and upsert this shard's articles; records ``manifest.shard-i-of-n.json``."""
    check_engine(cfg, shard, client)
    t0 = time.perf_counter()
    path, sig, files = index_identity(cfg)
    store = open_store(cfg, path, client)
    try:
        emb, full_sig, dim = index_embedder(cfg, sig)
        _open(store, shard, full_sig, dim)
        stats: dict[str, int] = {}
        chunks = Chunker(cfg.index.chunk_tokens, cfg.index.chunk_overlap).iter_chunks(
            _share(cfg, shard), stats
        )
        first = next(chunks, None)
        new = (
            0
            if first is None
            else _upsert(store, emb, chain([first], chunks), max(1, cfg.index.embed_batch_size) * 4)
        )
        store.flush()
        seconds = time.perf_counter() - t0
        path.mkdir(parents=True, exist_ok=True)
        build = {"seconds": round(seconds, 1), "embedded_chunks": new if emb else 0}
        record = {"shard": str(shard), "signature": sig, "corpus": files, "store": store.location}
        record.update(counts=stats, build=build)
        atomic_write_json(path / f"manifest{shard.suffix}.json", record)
        info = IndexInfo(path, store.count(), new, stats.get("chunks", 0), seconds, store.location, stats)
    finally:
        store.close()
    log.info("shard %s: %s", shard, info.summary())
    return info


def build_index_sharded(cfg: Config, shard: Shard, client: Any = None) -> IndexInfo:
    """One share under a launcher (then rank 0 writes the manifest after a barrier), or one ``--shard``."""
    if not shard.sharded:
        return build_index(cfg, client)
    info = build_shard(cfg, shard, client)
    if not shard.launched:
        log.info("shard %s done; when all are, `bench index` (one process) writes the manifest", shard)
        return info
    barrier("index points")
    return build_index(cfg, client) if shard.index == 0 else info
