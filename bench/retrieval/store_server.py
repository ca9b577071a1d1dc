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
    SPARSE,
    Leg,
    QueryPlan,
    Sparse,
    check_signature,
    named_vectors,
    query_plan,
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
        plan = query_plan(dense, sparse, mode, k)
        with warnings.catch_warnings():  # local mode is always exact and says so on every query
            warnings.filterwarnings("ignore", message="Local mode performs exact")
            res = self.client.query_points(self.collection, **self.request(plan))
        return top_k([(float(p.score), dict(p.payload or {})) for p in res.points], plan.k)

    def request(self, plan: QueryPlan) -> dict[str, Any]:
        """The plan as ``QdrantClient.query_points`` keyword arguments (after the collection name)."""
        m = self._m

        def vector(leg: Leg) -> Any:
            if leg.sparse is not None:
                return m.SparseVector(indices=list(leg.sparse[0]), values=list(leg.sparse[1]))
            return list(leg.dense)

        def params(leg: Leg) -> dict[str, Any]:
            return {"params": self._params} if leg.using == DENSE else {}

        if plan.fusion is None:
            (leg,) = plan.legs
            single = {"search_params": self._params} if leg.using == DENSE else {}
            return {
                "query": vector(leg),
                "using": leg.using,
                "limit": plan.limit,
                "with_payload": True,
                **single,
            }
        return {
            "prefetch": [
                m.Prefetch(query=vector(leg), using=leg.using, limit=leg.limit, **params(leg))
                for leg in plan.legs
            ],
            "query": m.RrfQuery(rrf=m.Rrf(k=plan.rrf_k)),
            "limit": plan.limit,
            "with_payload": True,
        }

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
