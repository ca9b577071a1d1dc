"""The langchain adapters are public API: used the way docs/architecture.md shows, through langchain's own
interfaces (Runnable chains, ``batch``, ``VectorStore.as_retriever``), on the embedded and server backends."""

from __future__ import annotations

from pathlib import Path

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.vectorstores import VectorStore
from qdrant_client import QdrantClient

from bench.retrieval import index
from bench.retrieval import langchain_retriever as lc
from tests.test_index import _articles, _cfg


def _context(docs: list[Document]) -> str:
    return "\n".join(f"[{d.metadata['title']}] {d.page_content}" for d in docs)


def test_retriever_in_a_langchain_chain_on_the_embedded_index(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, _articles(tmp_path / "a.jsonl"), "embedder_model=1024")
    with index.open_retriever(cfg) as r:
        retriever = lc.langchain_retriever(r, k=2, mode="hybrid")
        assert isinstance(retriever, BaseRetriever)
        chain = retriever | RunnableLambda(_context)
        context = chain.invoke("Qual é a capital do país3?")
        assert context.startswith("[Cidade3] ") and context.count("\n") == 1
        first, second = retriever.batch(["clima de Cidade5 fria", "capital do país2"])
        assert first[0].metadata["title"] == "Cidade5" and first[0].metadata["section"] == "Clima"
        assert second[0].metadata["title"] == "Cidade2" and len(second) == 2
        hit = r.search("capital do país2", k=1, mode="hybrid")[0]
        assert (second[0].page_content, second[0].metadata["chunk_id"]) == (hit.text, hit.chunk_id)


def test_vectorstore_as_a_langchain_retriever_on_a_server(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, _articles(tmp_path / "a.jsonl"), "qdrant_url=:memory:")
    client = QdrantClient(":memory:")
    index.build_index(cfg, client=client)
    with index.open_retriever(cfg, client=client) as r:
        store = lc.langchain_vectorstore(r, mode="sparse")
        assert isinstance(store, VectorStore)
        chain = store.as_retriever(search_kwargs={"k": 1}) | RunnableLambda(_context)
        assert chain.invoke("clima de Cidade5 fria") == "[Cidade5] Cidade5 é fria."
        scored = store.similarity_search_with_score("clima de Cidade5 fria", k=2)
        assert scored[0][0].metadata["title"] == "Cidade5" and scored[0][1] >= scored[1][1]
