"""langchain integration: our retriever as a langchain ``BaseRetriever`` (any backend, any mode), and a
langchain-qdrant ``QdrantVectorStore`` over the same server collection (dense vectors)."""

from __future__ import annotations

from typing import Any

from bench.config import BenchError
from bench.index import Retriever
from bench.store import ServerStore


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


def langchain_vectorstore(retriever: Retriever) -> Any:
    """A langchain-qdrant ``QdrantVectorStore`` on the same server collection (dense vectors)."""
    from langchain_qdrant import QdrantVectorStore, RetrievalMode

    from bench.embedders import LangchainEmbeddings
    from bench.store import DENSE

    if not isinstance(retriever.store, ServerStore):
        raise BenchError("langchain-qdrant needs the server backend (set index.qdrant_url)")
    return QdrantVectorStore(
        client=retriever.store.client,
        collection_name=retriever.store.collection,
        embedding=LangchainEmbeddings(retriever.embedder),
        retrieval_mode=RetrievalMode.DENSE,
        vector_name=DENSE,
        content_payload_key="text",
        metadata_payload_key="metadata",
    )
