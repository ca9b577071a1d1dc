"""Training-data building: every format, curation filters, dedup, deterministic split, leakage guard."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.config import BenchError, load_config
from bench.ingest.corpus import Article, Section
from bench.training import sft_data, sft_qa

SENT = "O rio Tejo atravessa a cidade de Lisboa e desagua no oceano Atlântico perto da capital. "


def _cfg(tmp_path: Path, *extra: str):  # type: ignore[no-untyped-def]
    return load_config("faquad", [*_cfg_args(tmp_path), "val_fraction=0", *extra])


def _cfg_args(tmp_path: Path) -> list[str]:
    return [f"results_dir={tmp_path}", "min_text_chars=20", "finetune.scope=corpus"]


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _art(i: int, title: str, lead: str, *sections: tuple[str, str]) -> Article:
    secs = (Section("", lead), *(Section(h, t) for h, t in sections))
    return Article(i, title, "\n\n".join([lead, *(t for _, t in sections)]), secs)


ARTICLES = [
    _art(1, "Lisboa", SENT * 3, ("Geografia", "Lisboa fica na foz do Tejo e tem sete colinas históricas.")),
    _art(2, "Berlim", "Berlim é a capital e a maior cidade da Alemanha, junto ao rio Spree."),
    _art(3, "X", "Um título curto demais para ser mantido no corpus de treino final."),  # short title
    _art(4, "Vazio", ""),  # empty
    _art(
        5, "Lisboa", SENT * 3, ("Geografia", "Lisboa fica na foz do Tejo e tem sete colinas históricas.")
    ),  # dup
]


def test_text_packing_respects_max_length(tmp_path: Path, tok: Any) -> None:
    cfg = _cfg(tmp_path, "max_length=48")
    data = sft_data.build_sft_data(cfg, tok, use_chat=True, articles=ARTICLES)
    assert data.fmt == "text" and data.question_ids == frozenset()
    for rec in data.train:
        assert len(tok(rec["text"], add_special_tokens=False)["input_ids"]) <= 48
    joined = " ".join(r["text"] for r in data.train)
    assert "Berlim é a capital" in joined and "Tejo" in joined
    assert data.stats["dropped"]["short_title"] == 1 and data.stats["dropped"]["empty_article"] == 1
    assert data.stats["dropped"]["duplicate"] >= 1  # article 5 repeats article 1
    assert "knowledge injection" in data.stats["leakage_note"]


def test_instruct_records_with_and_without_chat_template(tmp_path: Path, tok: Any) -> None:
    cfg = _cfg(tmp_path, "recipe=instruct", "max_length=256")
    chat = sft_data.build_sft_data(cfg, tok, use_chat=True, articles=ARTICLES)
    plain = sft_data.build_sft_data(cfg, tok, use_chat=False, articles=ARTICLES)
    prompts = [r["prompt"] for r in plain.train]
    assert any(p.startswith("### Instruction:\nResuma o que é Berlim.") for p in prompts)
    assert any("Lisboa: Geografia" in p for p in prompts)
    assert all(p.endswith("### Response:\n") for p in prompts)
    assert all(r["prompt"].startswith("<|im_start|>user\n### Instruction:") for r in chat.train)
    berlim = next(r for r in plain.train if "Berlim" in r["prompt"])
    assert berlim["completion"].startswith("Berlim é a capital")


def test_max_records_and_too_long(tmp_path: Path, tok: Any) -> None:
    cfg = _cfg(tmp_path, "recipe=instruct", "max_length=256", "max_records=2")
    data = sft_data.build_sft_data(cfg, tok, use_chat=False, articles=ARTICLES)
    assert len(data.train) == 2 and data.stats["dropped"]["max_records_reached"] == 1
    cfg = _cfg(tmp_path, "recipe=instruct", "max_length=100")
    data = sft_data.build_sft_data(cfg, tok, use_chat=False, articles=ARTICLES)
    assert data.stats["dropped"]["too_long"] >= 1
    with pytest.raises(BenchError, match="no training records"):
        sft_data.build_sft_data(_cfg(tmp_path, "recipe=instruct", "max_length=5"), tok, False, ARTICLES)


def test_split_is_deterministic_and_seeded(tmp_path: Path, tok: Any) -> None:
    arts = [_art(i, f"Artigo {i}", f"Texto número {i} sobre a cidade. " * 3) for i in range(60)]
    cfg = _cfg(tmp_path, "val_fraction=0.3", "max_length=64")
    a = sft_data.build_sft_data(cfg, tok, True, arts)
    b = sft_data.build_sft_data(cfg, tok, True, arts)
    c = sft_data.build_sft_data(
        load_config(
            "faquad",
            [*_cfg_args(tmp_path), "val_fraction=0.3", "max_length=64", "seed=7"],
        ),
        tok,
        True,
        arts,
    )
    assert a.val == b.val and a.train == b.train
    assert 5 <= len(a.val) <= 35 and len(a.train) + len(a.val) == 60
    assert a.val != c.val


def test_qa_and_raft_use_only_train_split(tmp_path: Path, tok: Any, tiny_questions: Path) -> None:
    base = [f"train_questions={tiny_questions}", f"questions={tiny_questions}", "split=dev", "max_length=512"]
    base.append("raft_no_gold=0")  # every record keeps its gold paragraph here (test_ft_arm covers the rest)
    qa = sft_data.build_sft_data(_cfg(tmp_path, "recipe=qa", *base), tok, use_chat=False)
    assert qa.question_ids == {"q3"} and len(qa.train) == 1
    assert qa.train[0]["prompt"].endswith("Pergunta: Quantas colinas tem Lisboa?\nResposta:")
    assert qa.train[0]["completion"] == "sete colinas"  # the gold span, as the evaluation scores it
    cfg = _cfg(tmp_path, "recipe=raft", *base)
    assert sft_qa.training_question_ids(cfg) == {"q3"}
    extra = [
        {
            "id": f"t{i}",
            "question": f"Pergunta {i}?",
            "answers": [f"fato {i}"],
            "title": f"T{i}",
            "context": f"Contexto {i} com o fato {i}.",
            "split": "train",
        }
        for i in range(4)
    ]
    train_file = tmp_path / "train.jsonl"
    train_file.write_text(
        tiny_questions.read_text(encoding="utf-8") + "".join(json.dumps(r) + "\n" for r in extra),
        encoding="utf-8",
    )
    cfg = _cfg(tmp_path, "recipe=raft", *base, f"train_questions={train_file}")
    raft1 = sft_data.build_sft_data(cfg, tok, use_chat=False)
    raft2 = sft_data.build_sft_data(cfg, tok, use_chat=False)
    assert raft1.train == raft2.train  # distractors are deterministic
    prompt = next(r["prompt"] for r in raft1.train if "colinas" in r["prompt"])
    assert "Contexto:\n1. " in prompt and "A cidade tem sete colinas." in prompt
    # distractors: other train questions' contexts (3 when the gold paragraph is left out, RAFT)
    assert prompt.count("Contexto ") == sft_qa.N_DISTRACTORS
    assert "Berlim" not in prompt  # never an evaluation question's context


def test_leakage_guard(tmp_path: Path, tok: Any, tiny_questions: Path) -> None:
    sft_qa.check_leakage({"a"}, {"b"})
    with pytest.raises(BenchError, match="leakage: 1 evaluation"):
        sft_qa.check_leakage({"a", "b"}, {"b", "c"})
    assert sft_qa.training_question_ids(_cfg(tmp_path)) == set()  # text format trains on no questions
    cfg = _cfg(
        tmp_path,
        "recipe=qa",
        f"train_questions={tiny_questions}",
        f"questions={tiny_questions}",
        "split=",
        "drop_eval_duplicates=false",
        "max_length=512",
    )
    with pytest.raises(BenchError, match="leakage"):  # split="" evaluates all rows, q3 included
        sft_data.build_sft_data(cfg, tok, use_chat=False)
    # same question under another id is caught too
    rows = [json.loads(line) for line in tiny_questions.read_text(encoding="utf-8").splitlines()]
    renamed = tmp_path / "renamed.jsonl"
    renamed.write_text(json.dumps({**rows[2], "id": "other", "split": "dev"}) + "\n", encoding="utf-8")
    cfg = _cfg(
        tmp_path,
        "recipe=qa",
        f"train_questions={tiny_questions}",
        f"questions={renamed}",
        "split=dev",
        "drop_eval_duplicates=false",
        "max_length=512",
    )
    with pytest.raises(BenchError, match="drop_eval_duplicates"):
        sft_data.build_sft_data(cfg, tok, use_chat=False)
    extra = {
        **rows[2],
        "id": "q9",
        "question": "Onde desagua o rio Tejo?",
        "answers": ["no Atlântico"],
        "context": "O rio Tejo nasce em Espanha e desagua no Atlântico, junto a Lisboa, num largo estuário.",
    }
    same_page = {**extra, "id": "q10", "question": "Onde fica o estuário?", "context": rows[2]["context"]}
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in (rows[2], extra, same_page)), encoding="utf-8")
    cfg = replace(cfg, finetune=replace(cfg.finetune, train_questions=str(train), drop_eval_duplicates=True))
    dropped = sft_data.build_sft_data(cfg, tok, use_chat=False)
    assert dropped.stats["dropped"]["eval_duplicate"] == 1
    # a train question on the evaluation question's own page is a document twin: dropped, counted
    assert dropped.stats["dropped"]["eval_document_twin"] == 1
    assert [r["id"] for r in dropped.stats["training_questions"]] == ["q9"]
    assert rows[2]["question"] not in json.dumps(dropped.train, ensure_ascii=False)
    assert dropped.question_ids == {"q9"} and len(dropped.train) == 1
    with pytest.raises(BenchError, match="train_questions"):
        sft_data.build_sft_data(_cfg(tmp_path, "recipe=qa", "train_questions="), tok, use_chat=False)
