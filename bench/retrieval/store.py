"""Qdrant behind one protocol: embedded ``qdrant-edge`` (default) or ``qdrant-client`` for a server.

Each point has a named dense vector ``dense`` (cosine, size from the embedder) and a named sparse vector
``bm25`` (Qdrant's IDF modifier; term weights from :class:`Bm25Encoder`, i.e. ``qdrant_edge.Bm25`` with
Portuguese stop words and the Snowball Portuguese stemmer, used for both backends). Hybrid search is one
Qdrant query: a dense and a sparse prefetch fused with RRF. The collection records a *signature*
(embedder, dim, chunking) and refuses to be written or read with another one. This module holds the protocol,
the shared pieces and the embedded store; the server store is :mod:`bench.retrieval.store_server`, and
``bench.retrieval.index.open_store`` picks one.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench.config import BenchError
from bench.io import atomic_write_json

log = logging.getLogger(__name__)

DENSE, SPARSE = "dense", "bm25"
MODES = ("dense", "sparse", "hybrid")
RRF_K = 60
INT8_OVERSAMPLING = 2.0
POINT_NS = uuid.UUID("6f1c6a52-8c0e-4d59-9d1e-5a0b7f3e2c11")
Sparse = tuple[list[int], list[float]]


def point_id(article_id: int, n: int) -> str:
    """Deterministic point id of chunk ``n`` of an article (uuid5), so reruns overwrite nothing new."""
    return str(uuid.uuid5(POINT_NS, f"{article_id}:{n}"))


def named_vectors(
    dense: np.ndarray | None,
    sparse: Sequence[Sparse],
    i: int,
    sparse_vector: Callable[[list[int], list[float]], Any],
) -> dict[str, Any]:
    """Point ``i``'s named vectors for either client: BM25, and dense unless the index is sparse-only."""
    out = {SPARSE: sparse_vector(list(sparse[i][0]), list(sparse[i][1]))}
    if dense is not None:
        out[DENSE] = dense[i].tolist()
    return out


def check_signature(found: dict[str, Any] | None, wanted: dict[str, Any], where: str) -> None:
    if found and found != wanted:
        diff = ", ".join(
            f"{k}: {found.get(k)!r} != {wanted.get(k)!r}" for k in wanted if found.get(k) != wanted[k]
        )
        raise BenchError(
            f"{where} was built with a different embedder/chunking ({diff}); "
            "use another index.collection or delete it: it is not mixed"
        )


class VectorStore(Protocol):
    location: str

    def open(self, signature: dict[str, Any], dim: int) -> None: ...
    def existing(self, ids: Sequence[str]) -> set[str]: ...
    def upsert(
        self,
        ids: Sequence[str],
        dense: np.ndarray | None,
        sparse: Sequence[Sparse],
        payloads: Sequence[dict[str, Any]],
    ) -> None: ...
    def count(self) -> int: ...
    def query(
        self,
        dense: np.ndarray | None,
        sparse: Sparse | None,
        mode: str,
        k: int,
        article_id: int | None = None,
    ) -> list[tuple[float, dict[str, Any]]]: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def prefetch_limit(k: int) -> int:
    return max(4 * k, 20)


TIE_MARGIN = 10  # fused results fetched beyond k, so a tie at the k-th place is decided by chunk id


def top_k(hits: list[tuple[float, dict[str, Any]]], k: int) -> list[tuple[float, dict[str, Any]]]:
    """The best ``k`` by score, ties broken by chunk id: RRF gives equal scores to different chunks (same
    ranks in swapped lists), and Qdrant's order among them depends on how the index was built."""
    return sorted(hits, key=lambda h: (-round(h[0], 9), str(h[1].get("chunk_id", ""))))[:k]


@dataclass(frozen=True)
class Leg:
    """One nearest-neighbour search on a named vector: ``dense`` (floats, searched with the
    store's search parameters: exact/HNSW ef/int8 rescoring) or ``bm25`` (sparse indices and values)."""

    using: str
    dense: tuple[float, ...] = ()
    sparse: tuple[tuple[int, ...], tuple[float, ...]] | None = None
    limit: int = 0


@dataclass(frozen=True)
class QueryPlan:
    """What one retrieval asks Qdrant, independent of the client: a single leg (``fusion`` None, the leg's
    limit is ``limit``), or several legs as prefetches fused with RRF(``rrf_k``) into ``limit`` results
    (``k`` plus a tie margin). ``k`` is how many the caller keeps (:func:`top_k`). Each store translates a
    plan into its client's request; :func:`query_plan` is the only place that decides the shapes."""

    legs: tuple[Leg, ...]
    limit: int
    k: int
    fusion: str | None = None
    rrf_k: int = RRF_K
    article_id: int | None = None  # only this article's chunks (the gold-page context; page-only reading)


def query_plan(
    dense: np.ndarray | None, sparse: Sparse | None, mode: str, k: int, article_id: int | None = None
) -> QueryPlan:
    """The dense, sparse or hybrid (dense + sparse prefetches, RRF) plan for the top ``k`` (of one article's
    chunks when ``article_id`` is given)."""
    if mode not in MODES:
        raise BenchError(f"unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}")
    if mode != "sparse" and dense is None:
        raise BenchError(f"{mode} retrieval needs a dense query vector (the index has no embedder)")
    if mode != "dense" and sparse is None:
        raise BenchError(f"{mode} retrieval needs a sparse (BM25) query")
    legs = []
    if dense is not None and mode != "sparse":
        legs.append(Leg(DENSE, dense=tuple(np.asarray(dense, dtype=float).ravel().tolist())))
    if sparse is not None and mode != "dense":
        legs.append(Leg(SPARSE, sparse=(tuple(sparse[0]), tuple(sparse[1]))))
    if mode != "hybrid":
        return QueryPlan((replace(legs[0], limit=k),), limit=k, k=k, article_id=article_id)
    lim = prefetch_limit(k)
    return QueryPlan(
        tuple(replace(leg, limit=lim) for leg in legs),
        limit=k + TIE_MARGIN,
        k=k,
        fusion="rrf",
        article_id=article_id,
    )


class EdgeStore:
    """Embedded Qdrant shard (``qdrant_edge.EdgeShard``) in ``path/shard``, signature in collection.json."""

    def __init__(
        self, path: Path, exact: bool = True, hnsw_ef: int = 128, int8: bool = False, on_disk: bool = False
    ) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self.path = Path(path)
        self.location = str(self.path)
        self._int8, self._on_disk = int8, on_disk
        # int8: search the quantised copy, re-score 2× the candidates on the originals (recall, see docs)
        quant = qe.QuantizationSearchParams(rescore=True, oversampling=INT8_OVERSAMPLING) if int8 else None
        self._params = qe.SearchParams(exact=exact, hnsw_ef=None if exact else hnsw_ef, quantization=quant)
        self._shard: Any = None

    def open(self, signature: dict[str, Any], dim: int) -> None:
        qe = self._qe
        sig_file = self.path / "collection.json"
        found = json.loads(sig_file.read_text("utf-8")) if sig_file.exists() else None
        check_signature(found, signature, f"index {self.path}")
        shard_dir = self.path / "shard"
        config = qe.EdgeConfig(
            vectors={DENSE: self._dense_params(dim)} if dim else {},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        try:
            if shard_dir.exists() and any(shard_dir.iterdir()):
                self._shard = qe.EdgeShard.load(str(shard_dir), config)
            else:
                shard_dir.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(shard_dir), config)
        except Exception as exc:  # the Rust side raises plain exceptions on incompatible configs
            if "WouldBlock" in str(exc):
                raise BenchError(
                    f"embedded index {shard_dir} is already open elsewhere (one opener at a time)"
                ) from exc
            raise BenchError(f"cannot open the embedded index {shard_dir} (dim {dim}): {exc}") from exc
        if found is None:
            atomic_write_json(sig_file, signature)

    def _dense_params(self, dim: int) -> Any:
        qe = self._qe
        if not (self._int8 or self._on_disk):
            return qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)
        int8 = (
            qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, always_ram=True)
            if self._int8
            else None
        )
        return qe.EdgeVectorParams(
            size=dim, distance=qe.Distance.Cosine, on_disk=self._on_disk or None, quantization_config=int8
        )

    def existing(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        records = self._shard.retrieve(list(ids), with_payload=False, with_vector=False)
        return {str(r.id) for r in records}

    def upsert(
        self,
        ids: Sequence[str],
        dense: np.ndarray | None,
        sparse: Sequence[Sparse],
        payloads: Sequence[dict[str, Any]],
    ) -> None:
        qe = self._qe
        points = [
            qe.Point(
                pid,
                named_vectors(dense, sparse, i, qe.SparseVector),
                payloads[i],
            )
            for i, pid in enumerate(ids)
        ]
        if points:
            self._shard.update(qe.UpdateOperation.upsert_points(points))

    def count(self) -> int:
        return int(self._shard.count(self._qe.CountRequest(exact=True)))

    def query(
        self,
        dense: np.ndarray | None,
        sparse: Sparse | None,
        mode: str,
        k: int,
        article_id: int | None = None,
    ) -> list[tuple[float, dict[str, Any]]]:
        plan = query_plan(dense, sparse, mode, k, article_id)
        hits = self._shard.query(self.request(plan))
        return top_k([(float(p.score), dict(p.payload or {})) for p in hits], plan.k)

    def request(self, plan: QueryPlan) -> Any:
        """The plan as a ``qdrant_edge.QueryRequest``."""
        qe = self._qe

        def nearest(leg: Leg) -> Any:
            vector = (
                qe.SparseVector(list(leg.sparse[0]), list(leg.sparse[1]))
                if leg.sparse is not None
                else list(leg.dense)
            )
            return qe.Query.Nearest(vector, using=leg.using)

        def params(leg: Leg) -> Any:
            return self._params if leg.using == DENSE else None

        where = None
        if plan.article_id is not None:
            match = qe.MatchValue(int(plan.article_id))
            where = qe.Filter(must=[qe.FieldCondition("article_id", match=match)])
        if plan.fusion is None:
            (leg,) = plan.legs
            return qe.QueryRequest(
                limit=plan.limit, query=nearest(leg), params=params(leg), with_payload=True, filter=where
            )
        return qe.QueryRequest(
            limit=plan.limit,
            prefetches=[
                qe.Prefetch(leg.limit, query=nearest(leg), params=params(leg), filter=where)
                for leg in plan.legs
            ],
            query=qe.Fusion.Rrf(k=plan.rrf_k),
            with_payload=True,
            filter=where,
        )

    def flush(self) -> None:
        if self._shard is not None:
            self._shard.flush()

    def close(self) -> None:
        if self._shard is not None:
            self._shard.flush()
            self._shard.close()
            self._shard = None
