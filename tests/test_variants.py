from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.config import BenchError, load_config
from bench.prompts import MAX_PASSAGE_CHARS, build_messages, format_passage
from bench.variants import VARIANTS, build_variants, record_of
from tests.test_runner import FakeGenerator, FakeRetriever


def test_registry_covers_the_five_variants() -> None:
    assert list(VARIANTS) == ["base", "rag", "ft", "ft_rag", "oracle"]
    assert [n for n, s in VARIANTS.items() if s.uses_retrieval] == ["rag", "ft_rag"]
    assert [n for n, s in VARIANTS.items() if s.uses_adapter] == ["ft", "ft_rag"]
    assert VARIANTS["oracle"].context == "gold"


def test_prompts_are_portuguese_with_context_block() -> None:
    closed = build_messages(" Qual é a capital? ")
    assert closed[0]["role"] == "system" and "português" in closed[0]["content"]
    assert closed[1] == {"role": "user", "content": "Pergunta: Qual é a capital?"}
    rag = build_messages("Q?", ["um", "dois"])[1]["content"]
    assert rag == "Contexto:\n1. um\n2. dois\n\nPergunta: Q?"
    long = format_passage("palavra " * 1000, "Título", "Secção")
    assert long.startswith("[Título § Secção] ") and len(long) < MAX_PASSAGE_CHARS + 40


def test_variants_share_generators_and_retriever(tmp_path: Path) -> None:
    cfg = load_config(None, ["index.k=2", "model.max_new_tokens=9"])
    calls: list[str] = []
    gens: dict[str, Any] = {"base": FakeGenerator("base", calls), "ft": FakeGenerator("ft", calls)}
    retriever = FakeRetriever()
    vs = build_variants(cfg, ["base", "rag", "ft_rag", "oracle"], gens, retriever)
    assert vs["rag"].generator is vs["base"].generator is vs["oracle"].generator
    assert vs["rag"].retriever is vs["ft_rag"].retriever is retriever and vs["base"].retriever is None
    q = {
        "id": "q1",
        "question": "Qual é a capital da Alemanha?",
        "answers": ["Berlim"],
        "title": "Berlim",
        "context": "Berlim é a capital.",
    }
    res = vs["rag"].answer(q)
    assert [h.chunk_id for h in res.hits] == ["c1", "c2"] and res.retrieval_ms > 0
    assert "Berlim é a capital da Alemanha." in res.answer
    oracle = vs["oracle"].answer(q)
    assert oracle.hits == [] and oracle.retrieval_ms == 0.0 and "Berlim é a capital." in oracle.answer
    rec = record_of("k", "q1", "h", res)
    assert (
        rec["hits"][0]["text"] == "Berlim é a capital da Alemanha." and rec["generation"]["new_tokens"] == 8
    )
    assert record_of("k", "q1", "h", None, "boom")["error"] == "boom"
    with pytest.raises(BenchError, match="needs the 'ft' generator"):
        build_variants(cfg, ["ft"], {"base": gens["base"]}, None)
    with pytest.raises(BenchError, match="unknown variant"):
        build_variants(cfg, ["rag2"], gens, retriever)
