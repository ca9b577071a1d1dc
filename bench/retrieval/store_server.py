"""A Qdrant server or cluster (``index.qdrant_url``) behind :class:`bench.retrieval.store.VectorStore`,
through
``qdrant-client``: one collection per index key (corpus content, chunking, embedder), so two corpora never
mix; ``shard_number``/``replication_factor`` from the config; the same named dense + BM25 vectors and RRF
fusion as the embedded store.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from bench.config import BenchError, Config
from bench.retrieval.store import (
    DENSE,
    RRF_K,
    SPARSE,
    TIE_MARGIN,
    Sparse,
    check_signature,
    named_vectors,
    prefetch_limit,
    top_k,
)

log = logging.getLogger(__name__)


class ServerStore:
    """A collection on a Qdrant server/cluster through ``qdrant-client`` (or an injected client)."""

    def __init__(self, cfg: Config, client: Any = None, key: str = "") -> None:
        from qdrant_client import QdrantClient, models

        self._m = models
        ic = cfg.index
        # Named by the index key (corpus content, chunking, embedder): two corpora never share a collection.
        self.collection = f"{ic.collection}-{key}" if key else ic.collection
        self._shard_number, self._replication = ic.shard_number, ic.replication_factor
        self._params = models.SearchParams(exact=ic.exact, hnsw_ef=None if ic.exact else ic.hnsw_ef)
        if client is None:
            api_key = os.environ.get(ic.qdrant_api_key_env) or None
            if ic.qdrant_url == ":memory:":
                client = QdrantClient(location=":memory:")
            else:
                client = QdrantClient(url=ic.qdrant_url, api_key=api_key, timeout=max(1, int(ic.timeout_s)))
        self.client = client
        self.location = f"{ic.qdrant_url or 'client'}/{self.collection}"

    def open(self, signature: dict[str, Any], dim: int) -> None:
        m = self._m
        try:
            exists = self.client.collection_exists(self.collection)
            if exists:
                info = self.client.get_collection(self.collection)
                found = dict(info.config.metadata or {}).get("bench")
                check_signature(found, signature, f"Qdrant collection {self.location}")
                vectors = info.config.params.vectors
                size = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
                if size != (dim or None):
                    raise BenchError(
                        f"Qdrant collection {self.location} has dense size {size}, the embedder gives {dim}; "
                        "use another index.collection or delete it"
                    )
            else:
                self.client.create_collection(
                    self.collection,
                    vectors_config={DENSE: m.VectorParams(size=dim, distance=m.Distance.COSINE)}
                    if dim
                    else {},
                    sparse_vectors_config={SPARSE: m.SparseVectorParams(modifier=m.Modifier.IDF)},
                    shard_number=self._shard_number,
                    replication_factor=self._replication,
                    metadata={"bench": signature},
                )
        except BenchError:
            raise
        except Exception as exc:
            raise BenchError(
                f"Qdrant at {self.location} is unreachable or refused the request: {exc}"
            ) from exc

    def existing(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        recs = self.client.retrieve(self.collection, list(ids), with_payload=False, with_vectors=False)
        return {str(r.id) for r in recs}

    def upsert(
        self,
        ids: Sequence[str],
        dense: np.ndarray | None,
        sparse: Sequence[Sparse],
        payloads: Sequence[dict[str, Any]],
    ) -> None:
        m = self._m
        points = [
            m.PointStruct(
                id=pid,
                vector=named_vectors(dense, sparse, i, lambda ix, vs: m.SparseVector(indices=ix, values=vs)),
                payload=payloads[i],
            )
            for i, pid in enumerate(ids)
        ]
        if points:
            self.client.upsert(self.collection, points=points, wait=True)

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def query(
        self, dense: np.ndarray | None, sparse: Sparse | None, mode: str, k: int
    ) -> list[tuple[float, dict[str, Any]]]:
        m = self._m
        dq = np.asarray(dense).tolist() if dense is not None else None
        sq = m.SparseVector(indices=list(sparse[0]), values=list(sparse[1])) if sparse is not None else None
        if mode == "dense":
            with warnings.catch_warnings():  # local mode is always exact and says so on every query
                warnings.filterwarnings("ignore", message="Local mode performs exact")
                res = self.client.query_points(
                    self.collection,
                    query=dq,
                    using=DENSE,
                    limit=k,
                    search_params=self._params,
                    with_payload=True,
                )
        elif mode == "sparse":
            res = self.client.query_points(
                self.collection, query=sq, using=SPARSE, limit=k, with_payload=True
            )
        else:
            lim = prefetch_limit(k)
            res = self.client.query_points(
                self.collection,
                prefetch=[
                    m.Prefetch(query=dq, using=DENSE, limit=lim, params=self._params),
                    m.Prefetch(query=sq, using=SPARSE, limit=lim),
                ],
                query=m.RrfQuery(rrf=m.Rrf(k=RRF_K)),
                limit=k + TIE_MARGIN,
                with_payload=True,
            )
        return top_k([(float(p.score), dict(p.payload or {})) for p in res.points], k)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
