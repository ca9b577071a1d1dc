"""langchain integration: our retriever as a langchain ``BaseRetriever`` (any backend, any mode), and a
langchain-qdrant ``QdrantVectorStore`` over the same server collection (dense vectors)."""

from __future__ import annotations

from typing import Any

from bench.config import BenchError
from bench.retrieval.index import Retriever
from bench.retrieval.store_server import ServerStore


def langchain_retriever(retriever: Retriever, k: int | None = None, mode: str | None = None) -> Any:
    """A langchain ``BaseRetriever`` over our :class:`Retriever` (any VectorStore backend)."""
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class _BenchRetriever(BaseRetriever):
        inner: Any
        k: int | None = None
        mode: str | None = None

        def _get_relevant_documents(
            self, query: str, *, run_manager: CallbackManagerForRetrieverRun
        ) -> list[Document]:
            hits = self.inner.search(query, self.k, self.mode)
            return [
                Document(
                    page_content=h.text,
                    metadata={
                        "chunk_id": h.chunk_id,
                        "article_id": h.article_id,
                        "title": h.title,
                        "section": h.section,
                        "score": h.score,
                    },
                )
                for h in hits
            ]

    return _BenchRetriever(inner=retriever, k=k, mode=mode)


def langchain_vectorstore(retriever: Retriever, mode: str = "dense") -> Any:
    """A langchain-qdrant ``QdrantVectorStore`` on the same server collection.

    ``mode``: ``dense`` (our embedder), ``sparse`` (our Portuguese BM25, IDF applied by Qdrant) or ``hybrid``
    (both, fused by Qdrant's RRF: langchain-qdrant's own fusion, not :mod:`bench.retrieval.store`'s).
    """
    from langchain_qdrant import QdrantVectorStore, RetrievalMode

    from bench.retrieval.embedders import LangchainEmbeddings
    from bench.retrieval.store import DENSE, SPARSE

    if not isinstance(retriever.store, ServerStore):
        raise BenchError("langchain-qdrant needs the server backend (set index.qdrant_url)")
    modes = {"dense": RetrievalMode.DENSE, "sparse": RetrievalMode.SPARSE, "hybrid": RetrievalMode.HYBRID}
    if mode not in modes:
        raise BenchError(f"unknown langchain vectorstore mode {mode!r}; expected one of {', '.join(modes)}")
    if mode != "sparse" and retriever.embedder is None:
        raise BenchError(f"the index was built sparse-only (index.retrieval = 'sparse'): no {mode} vectors")
    return QdrantVectorStore(
        client=retriever.store.client,
        collection_name=retriever.store.collection,
        embedding=LangchainEmbeddings(retriever.embedder)
        if retriever.embedder and mode != "sparse"
        else None,
        sparse_embedding=langchain_bm25(retriever.bm25) if mode != "dense" else None,
        retrieval_mode=modes[mode],
        vector_name=DENSE,
        sparse_vector_name=SPARSE,
        content_payload_key="text",
        metadata_payload_key="metadata",
    )


def langchain_bm25(bm25: Any) -> Any:
    """langchain-qdrant ``SparseEmbeddings`` over our :class:`bench.retrieval.bm25.Bm25Encoder`."""
    from langchain_qdrant import SparseEmbeddings, SparseVector

    class _Bm25(SparseEmbeddings):
        def embed_documents(self, texts: list[str]) -> list[SparseVector]:
            return [SparseVector(indices=i, values=v) for i, v in map(bm25.document, texts)]

        def embed_query(self, text: str) -> SparseVector:
            indices, values = bm25.query(text)
            return SparseVector(indices=indices, values=values)

    return _Bm25()
