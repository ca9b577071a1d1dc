from __future__ import annotations

import json
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from bench.config import BenchError, Config, load_config
from bench.eval.retrieval_eval import retrieval_eval
from bench.retrieval import index
from bench.retrieval import langchain_retriever as lc
from bench.retrieval.embedders import HashingEmbedder


def _articles(path: Path, n: int = 6) -> Path:
    rows = []
    for i in range(1, n + 1):
        lead = f"Cidade{i} é a capital do país{i}. " + " ".join(
            f"Frase {j} sobre Cidade{i}." for j in range(12)
        )
        rows.append(
            {
                "id": i,
                "title": f"Cidade{i}",
                "text": lead,
                "sections": [
                    {"heading": "", "text": lead},
                    {"heading": "Clima", "text": f"Cidade{i} é fria."},
                ],
            }
        )
    rows.append({"id": 99, "title": "Vazio", "text": "", "sections": []})
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _cfg(tmp_path: Path, corpus: Path, *extra: str) -> Config:
    return load_config(
        None,
        [
            f"corpus={corpus}",
            f"results_dir={tmp_path / 'res'}",
            "embedder=hashing",
            "chunk_tokens=30",
            "chunk_overlap=5",
            "embed_batch_size=1",
            *extra,
        ],
    )


def test_build_is_idempotent_and_writes_manifest_last(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, _articles(tmp_path / "a.jsonl"))
    info = index.build_index(cfg)
    assert info.points_new == info.points_total == info.chunks > 12
    manifest = json.loads((info.path / "manifest.json").read_text())
    assert manifest["embedder"] == "hashing/32" and manifest["dim"] == 32
    assert manifest["counts"]["empty_articles"] == 1 and manifest["counts"]["points"] == info.points_total
    assert len(manifest["corpus"][0]["sha256"]) == 64
    again = index.build_index(cfg)
    assert again.points_new == 0 and again.points_total == info.points_total
    assert "0 new points" in again.summary()


def test_killed_build_resumes_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(tmp_path, _articles(tmp_path / "a.jsonl"))
    real = HashingEmbedder.embed_passages
    calls = {"n": 0}

    def dying(self: HashingEmbedder, texts: list[str]):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(self, texts)

    monkeypatch.setattr(HashingEmbedder, "embed_passages", dying)
    with pytest.raises(KeyboardInterrupt):
        index.build_index(cfg)
    path, _, _ = index.index_identity(cfg)
    assert not (path / "manifest.json").exists()
    monkeypatch.setattr(HashingEmbedder, "embed_passages", real)
    info = index.build_index(cfg)
    assert info.points_new == info.points_total - 8  # two batches of 4 survived the kill
    assert (path / "manifest.json").exists()


def test_empty_corpus_is_refused_without_creating_an_index(tmp_path: Path) -> None:
    corpus = tmp_path / "empty.jsonl"
    corpus.write_text(json.dumps({"id": 1, "title": "X", "text": " ", "sections": []}) + "\n")
    cfg = _cfg(tmp_path, corpus)
    with pytest.raises(BenchError, match="no article with text"):
        index.build_index(cfg)
    assert not (tmp_path / "res" / "index").exists() or not any((tmp_path / "res" / "index").iterdir())


def test_duplicate_article_ids_are_an_error_naming_the_page(tmp_path: Path) -> None:
    from tests.conftest import make_dump

    dump = tmp_path / "dup.xml"
    text = "Uma frase longa o bastante para virar um trecho do índice. " * 5
    dump.write_text(
        make_dump(
            [{"title": "Primeira", "id": 7, "text": text}, {"title": "Segunda", "id": 7, "text": text}]
        ),
        encoding="utf-8",
    )
    with pytest.raises(BenchError, match=r"page 'Segunda' has article id 7, already used"):
        index.build_index(_cfg(tmp_path, dump))


def test_missing_corpus_file(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="not found"):
        index.build_index(_cfg(tmp_path, tmp_path / "nope.jsonl"))


def test_retriever_builds_on_demand_and_searches_all_modes(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, _articles(tmp_path / "a.jsonl"), "embedder_model=1024")  # few hash collisions
    with index.open_retriever(cfg) as r:
        for mode in ("dense", "sparse", "hybrid"):
            hits = r.search("Qual é a capital do país3?", k=4, mode=mode)
            assert len(hits) == 4 and isinstance(hits[0], index.Hit)
            assert hits[0].title == "Cidade3", mode
        with pytest.raises(BenchError, match="mode"):
            r.search("x", mode="magic")
        docs = lc.langchain_retriever(r, k=2, mode="sparse").invoke("clima de Cidade5 fria")
        assert docs[0].metadata["title"] == "Cidade5" and docs[0].metadata["section"] == "Clima"
    assert index.retrieve(cfg, "capital do país2", k=1, mode="sparse")[0].title == "Cidade2"


def test_server_backend_and_langchain_qdrant(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, _articles(tmp_path / "a.jsonl"), "qdrant_url=:memory:")
    client = QdrantClient(":memory:")
    info = index.build_index(cfg, client=client)
    assert index.build_index(cfg, client=client).points_new == 0
    with index.open_retriever(cfg, client=client) as r:
        assert r.store.count() == info.points_total
        assert r.search("capital do país4", k=1, mode="hybrid")[0].title == "Cidade4"
        vs = lc.langchain_vectorstore(r)
        docs = vs.similarity_search("Cidade6 é fria", k=1)
        assert docs[0].page_content == "Cidade6 é fria." and docs[0].metadata["title"] == "Cidade6"
        lc_docs = lc.langchain_retriever(r, k=1, mode="dense").invoke("Cidade6 é fria")
        assert lc_docs[0].page_content == docs[0].page_content
        for mode in ("sparse", "hybrid"):  # BM25 through langchain-qdrant's own query path
            found = lc.langchain_vectorstore(r, mode=mode).similarity_search("clima de Cidade5 fria", k=2)
            assert found[0].metadata["title"] == "Cidade5", mode
            assert found[0].page_content == r.search("clima de Cidade5 fria", k=1, mode=mode)[0].text
        with pytest.raises(BenchError, match="magic"):
            lc.langchain_vectorstore(r, mode="magic")


def test_retrieval_eval_over_tiny_dump(tmp_path: Path, tiny_dump: Path, tiny_questions: Path) -> None:
    cfg = _cfg(tmp_path, tiny_dump, f"questions={tiny_questions}", "index.k=2", "split=")
    res = retrieval_eval(cfg)
    assert res["n"] == 3
    for mode in ("dense", "sparse", "hybrid"):
        assert set(res[mode]) == {"recall@2", "answer_in_context@2", "mrr"}
        assert all(0.0 <= v <= 1.0 for v in res[mode].values())
    # only two articles: the gold one is always in the top 2, whatever the mode
    assert res["sparse"]["recall@2"] == res["dense"]["recall@2"] == res["hybrid"]["recall@2"] == 1.0
    dev = retrieval_eval(_cfg(tmp_path, tiny_dump, f"questions={tiny_questions}", "split=dev", "limit=1"))
    assert dev["n"] == 1


def test_bad_question_line_names_file_and_line(tmp_path: Path, tiny_dump: Path) -> None:
    q = tmp_path / "q.jsonl"
    q.write_text('{"id": "a", "question": "x", "answers": ["y"], "title": "Berlim"}\n{broken\n')
    with pytest.raises(BenchError, match=r"q\.jsonl:2"):
        retrieval_eval(_cfg(tmp_path, tiny_dump, f"questions={q}", "split="))
