from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.config import BenchError, load_config
from bench.core.prompts import EXAMPLES, build_messages, first_line, format_passage, prompt_id
from bench.eval.variants import VARIANTS, build_variants, record_of
from tests.test_runner import FakeGenerator, FakeRetriever

REPO = Path(__file__).resolve().parent.parent


def test_registry_covers_the_model_variants_and_the_baselines() -> None:
    baselines = ["echo", "prior", "picker_rag", "picker_oracle", "span_rag", "span_oracle"]  # report order
    models = ["base", "rag", "ft", "ft_rag", "oracle", "oracle_page", "rag_cf", "ft_rag_cf"]
    assert list(VARIANTS) == [*models, *baselines]
    assert [n for n, s in VARIANTS.items() if s.retrieves] == [
        "rag", "ft_rag", "rag_cf", "ft_rag_cf", "picker_rag", "span_rag"
    ]  # fmt: skip
    assert [n for n, s in VARIANTS.items() if s.uses_retrieval and not s.retrieves] == ["oracle_page"]
    assert [n for n, s in VARIANTS.items() if s.uses_adapter] == ["ft", "ft_rag", "ft_rag_cf"]
    assert [n for n, s in VARIANTS.items() if s.edit] == ["rag_cf", "ft_rag_cf"]
    assert [n for n, s in VARIANTS.items() if not s.uses_model] == baselines
    assert VARIANTS["oracle"].context == VARIANTS["picker_oracle"].context == "gold"
    assert VARIANTS["span_oracle"].context == "gold"


def test_prompts_are_portuguese_with_context_block() -> None:
    closed = build_messages(" Qual é a capital? ")
    assert closed[0]["role"] == "system" and "português" in closed[0]["content"]
    assert (
        "trecho exato e mais curto" in closed[0]["content"]
        and "sem repetir a pergunta" in closed[0]["content"]
    )
    assert closed[1] == {"role": "user", "content": "Pergunta: Qual é a capital?"}
    rag = build_messages("Q?", ["um", "dois"])[1]["content"]
    assert rag == "Contexto:\n1. um\n2. dois\n\nPergunta: Q?"
    # passages go in whole by default; the first reader cut them at 1,200 characters
    long = format_passage("palavra " * 1000, "Título", "Secção")
    assert long.startswith("[Título § Secção] ") and long.endswith("palavra") and len(long) > 7000
    assert len(format_passage("palavra " * 1000, max_chars=1200)) < 1210


def test_fewshot_examples_are_turns_with_context_only_when_the_question_has_context() -> None:
    closed = build_messages("Q?", (), "extractive", 2)
    assert [m["role"] for m in closed] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert closed[1]["content"] == f"Pergunta: {EXAMPLES[0].question}" and closed[2]["content"] == "1954"
    rag = build_messages("Q?", ["texto"], "extractive", 1)
    assert rag[1]["content"].startswith("Contexto:\n1. [CIENCIA DA COMPUTACAO] Turing")
    assert rag[-1]["content"] == "Contexto:\n1. texto\n\nPergunta: Q?"
    with pytest.raises(BenchError, match="examples"):
        build_messages("Q?", (), "sentence-v1", 1)
    with pytest.raises(BenchError, match=r"unknown model\.reader"):
        build_messages("Q?", (), "nope")


def test_fewshot_examples_come_from_faquad_train_and_hold_their_answer() -> None:
    rows = {r["id"]: r for r in map(json.loads, (REPO / "questions" / "faquad.jsonl").open(encoding="utf-8"))}
    for ex in EXAMPLES:
        row = rows[ex.question_id]
        assert row["split"] == "train" and row["question"] == ex.question and ex.answer in row["answers"]
        assert ex.answer in ex.context and ex.answer in row["context"]
    dev_titles = {r["title"] for r in rows.values() if r.get("split") == "dev"}
    assert not dev_titles & {ex.title for ex in EXAMPLES}


def test_first_line_and_prompt_id() -> None:
    assert first_line("\n  Resposta: 1954\nPorque ...") == "1954"
    assert first_line("") == ""
    assert prompt_id("extractive", 3) != prompt_id("extractive", 2) != prompt_id("sentence-v1", 0)
    assert prompt_id("extractive", 3) == prompt_id("extractive", 3)


def test_variants_share_generators_and_retriever(tmp_path: Path) -> None:
    cfg = load_config("faquad", ["index.k=2", "model.max_new_tokens=9"])
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


def test_baseline_variants_answer_without_a_model() -> None:
    cfg = load_config("faquad", ["index.k=2"])
    retriever = FakeRetriever()
    vs = build_variants(cfg, ["echo", "picker_oracle", "picker_rag"], {}, retriever)
    q = {
        "id": "q1",
        "question": "Qual é a capital da Alemanha?",
        "answers": ["Berlim"],
        "title": "Berlim",
        "context": "Berlim fica no leste. A capital da Alemanha é Berlim. Tem museus.",
    }
    assert vs["echo"].answer(q).answer == "Qual é a capital da Alemanha?"
    oracle = vs["picker_oracle"].answer(q)
    assert oracle.answer == "A capital da Alemanha é Berlim." and oracle.generation is None
    assert oracle.passages[0]["text"] == q["context"]
    rag = vs["picker_rag"].answer(q)
    assert rag.answer == "Berlim é a capital da Alemanha." and [h.chunk_id for h in rag.hits] == ["c1", "c2"]
    assert len(rag.passages) == 2
    rec = record_of("k", "q1", "h", rag)
    assert rec["generation"]["finish_reason"] == "none" and rec["passages"][0]["title"] == "Berlim"
