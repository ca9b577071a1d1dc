"""A Qdrant server or cluster (``index.qdrant_url``) behind :class:`bench.retrieval.store.VectorStore`,
through
``qdrant-client``: one collection per index key (corpus content, chunking, embedder), so two corpora never
mix; ``shard_number``/``replication_factor`` from the config; the same named dense + BM25 vectors and RRF
fusion as the embedded store.

Errors come in three kinds, each a :class:`bench.config.BenchError` that names the server and what was being
done: :class:`QdrantUnreachable` (no connection or a timeout: the URL is wrong or the server is down),
:class:`QdrantApiError` (the server answered with an HTTP error: status and its message), and
:class:`QdrantSchemaError` (the collection is missing, or its vectors do not fit the embedder's). Anything
else (a bug) propagates as it is.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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

SCHEMA_HINT = "rebuild it with `bench index` or use another index.collection"


class QdrantUnreachable(BenchError):
    """No connection to the server, or it timed out."""


class QdrantApiError(BenchError):
    """The server answered with an HTTP/API error."""


class QdrantSchemaError(BenchError):
    """The collection is missing or does not fit the index (e.g. another vector dimension)."""


def _api_message(exc: Any) -> str:
    """Qdrant's own error text from a response body (``{"status": {"error": ...}}``), else the raw body."""
    raw = bytes(getattr(exc, "content", b"") or b"")
    try:
        status = json.loads(raw).get("status")
        if isinstance(status, dict) and status.get("error"):
            return str(status["error"])
    except (ValueError, AttributeError):
        pass
    return raw.decode("utf-8", "replace")[:300] or str(exc)


def _is_schema_message(message: str) -> bool:
    low = message.lower()
    return "not found" in low or "doesn't exist" in low or "dimension" in low


def server_error(exc: Exception, url: str, location: str, action: str) -> BenchError | None:
    """The BenchError for a client exception raised while doing ``action``, or None when it is not a
    server's (a bug: the caller re-raises it)."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    if isinstance(exc, ResponseHandlingException):
        src = exc.source
        if isinstance(src, OSError) or type(src).__module__.startswith(("httpx", "httpcore")):
            return QdrantUnreachable(
                f"Qdrant at {url} is unreachable while {action} ({type(src).__name__}: {src}); "
                "check index.qdrant_url and that the server is running"
            )
        return QdrantApiError(f"Qdrant at {url} sent an unreadable answer while {action}: {src}")
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return QdrantUnreachable(f"Qdrant at {url} is unreachable while {action} ({exc})")
    if isinstance(exc, UnexpectedResponse):
        message = _api_message(exc)
        if exc.status_code == 404 or (exc.status_code == 400 and _is_schema_message(message)):
            return QdrantSchemaError(
                f"Qdrant collection {location} does not fit while {action}: {message}; {SCHEMA_HINT}"
            )
        return QdrantApiError(
            f"Qdrant at {url} answered HTTP {exc.status_code} {exc.reason_phrase} while {action}: {message}"
        )
    if isinstance(exc, ValueError) and _is_schema_message(str(exc)):  # the in-process (":memory:") client
        return QdrantSchemaError(
            f"Qdrant collection {location} does not fit while {action}: {exc}; {SCHEMA_HINT}"
        )
    return None


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
        self.url = ic.qdrant_url or "client"
        self.location = f"{self.url}/{self.collection}"

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Client exceptions as :func:`server_error` says; BenchErrors and bugs pass through."""
        try:
            yield
        except BenchError:
            raise
        except Exception as exc:
            err = server_error(exc, self.url, self.location, action)
            if err is None:
                raise
            raise err from exc

    def open(self, signature: dict[str, Any], dim: int) -> None:
        m = self._m
        with self._errors(f"opening collection {self.collection}"):
            exists = self.client.collection_exists(self.collection)
            if exists:
                info = self.client.get_collection(self.collection)
                found = dict(info.config.metadata or {}).get("bench")
                check_signature(found, signature, f"Qdrant collection {self.location}")
                vectors = info.config.params.vectors
                size = vectors[DENSE].size if isinstance(vectors, dict) and DENSE in vectors else None
                if size != (dim or None):
                    raise QdrantSchemaError(
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

    def existing(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        with self._errors(f"reading {len(ids)} point ids"):
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
            with self._errors(f"writing {len(points)} points"):
                self.client.upsert(self.collection, points=points, wait=True)

    def count(self) -> int:
        with self._errors("counting points"):
            return int(self.client.count(self.collection, exact=True).count)

    def query(
        self,
        dense: np.ndarray | None,
        sparse: Sparse | None,
        mode: str,
        k: int,
        article_id: int | None = None,
    ) -> list[tuple[float, dict[str, Any]]]:
        plan = query_plan(dense, sparse, mode, k, article_id)
        with self._errors(f"a {mode} query"), warnings.catch_warnings():  # local mode: always exact, says so
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

        where: dict[str, Any] = {}  # Prefetch(filter=...), query_points(query_filter=...)
        if plan.article_id is not None:
            match = m.MatchValue(value=int(plan.article_id))
            where = {"filter": m.Filter(must=[m.FieldCondition(key="article_id", match=match)])}
        top = {"query_filter": where["filter"]} if where else {}
        if plan.fusion is None:
            (leg,) = plan.legs
            single = {"search_params": self._params} if leg.using == DENSE else {}
            return {
                "query": vector(leg),
                "using": leg.using,
                "limit": plan.limit,
                "with_payload": True,
                **single,
                **top,
            }
        return {
            "prefetch": [
                m.Prefetch(query=vector(leg), using=leg.using, limit=leg.limit, **params(leg), **where)
                for leg in plan.legs
            ],
            "query": m.RrfQuery(rrf=m.Rrf(k=plan.rrf_k)),
            "limit": plan.limit,
            "with_payload": True,
            **top,
        }

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
