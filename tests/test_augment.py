"""Every evaluated page trained (coverage), QA pairs sampled to the evaluation's relation mix, and the `aug`
knowledge-augmentation recipe, on fictional pages and questions invented here (no model knows them)."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench import artifacts
from bench.__main__ import main
from bench.config import BenchError, load_config
from bench.training import augment, augment_rules, coverage, sft_data, sft_qa, sft_recipes

RUN_ON = (  # one "sentence" (no sentence end before the citation marker), longer than max_length tokens
    "'''Benedito Longo''' (Serra Alta, 1920 — Serra Baixa, 1990) foi um cronista imaginário que escreveu "
    + ", ".join(f"a crónica número {i} sobre a feira e o rio e a ponte velha da vila" for i in range(12))
    + ".[carece de fontes]"
)
PAGES = [
    ("Zé Quimera", "'''Zé Quimera''' (Vila Nada, 1901) foi um poeta."),  # far below min_text_chars
    (
        "Aurélia Brasfim",
        "'''Aurélia Maria Brasfim''' (Porto Sereno, 3 de maio de 1888 — Lagoa Funda, 9 de julho de 1950) foi "
        "uma pintora imaginária. Ela estudou em Lagoa Funda. Pintou sobretudo marinhas e retratos de "
        "pescadores.\n\n== Obra ==\nA sua obra está no museu da Bruma.",
    ),
    (
        "Vale do Orvalho",
        "'''Vale do Orvalho''' é um município brasileiro do estado da Bruma, fundado por tropeiros. "
        "Tem cerca de 9 mil habitantes.",
    ),
    ("Benedito Longo", RUN_ON),
    ("Olinda Fantasma", "'''Olinda Fantasma''' (Cabo Frio Velho, 1777) foi uma cantora inventada."),
]
DEV = [  # the evaluation: (title, relation, answer, question)
    ("Zé Quimera", "birth_year", "1901", "Em que ano nasceu Zé Quimera?"),
    ("Zé Quimera", "birth_place", "Vila Nada", "Onde nasceu Zé Quimera?"),
    ("Aurélia Brasfim", "birth_year", "1888", "Aurélia Brasfim nasceu em que ano?"),
    ("Aurélia Brasfim", "birth_place", "Porto Sereno", "Qual é o local de nascimento de Aurélia Brasfim?"),
    ("Aurélia Brasfim", "death_year", "1950", "Em que ano morreu Aurélia Brasfim?"),
    ("Aurélia Brasfim", "death_place", "Lagoa Funda", "Onde morreu Aurélia Brasfim?"),
    (
        "Vale do Orvalho",
        "municipality_state",
        "Bruma",
        "A que estado pertence o município de Vale do Orvalho?",
    ),
    ("Benedito Longo", "birth_year", "1920", "Em que ano nasceu Benedito Longo?"),
    ("Benedito Longo", "death_year", "1990", "Benedito Longo morreu em que ano?"),
]
EVAL_MIX = Counter(rel for _, rel, _, _ in DEV)  # 3 birth_year, 2 birth_place, 2 death_year, 1 + 1
# the train split in file order: municipalities first (the order the file-order cap used to take)
TRAIN_PLAN = [("municipality_state", 10), ("birth_year", 6), ("birth_place", 4), ("death_year", 3)]
TRAIN_PLAN += [("death_place", 2)]
TEMPLATES = {
    "municipality_state": (
        "A que estado pertence o município de {t}?",
        "Estado {n}",
        "{t} fica no estado {n}.",
    ),
    "birth_year": ("Em que ano nasceu {t}?", "17{n:02d}", "{t} nasceu no ano 17{n:02d}, numa aldeia."),
    "birth_place": ("Onde nasceu {t}?", "Aldeia {n}", "{t} veio ao mundo na Aldeia {n}."),
    "death_year": ("Em que ano morreu {t}?", "16{n:02d}", "{t} morreu no ano 16{n:02d}, longe de casa."),
    "death_place": ("Onde morreu {t}?", "Monte {n}", "{t} acabou os seus dias no Monte {n}."),
}


def _rows() -> list[dict[str, Any]]:
    rows = [
        {"id": f"d{i}", "question": q, "answers": [a], "title": t, "relation": rel, "split": "dev"}
        | {"context": f"{t}: {a}."}
        for i, (t, rel, a, q) in enumerate(DEV)
    ]
    rows.append(
        {"id": "x1", "question": "Em que ano nasceu Olinda Fantasma?", "answers": ["1777"], "split": "test"}
        | {"title": "Olinda Fantasma", "relation": "birth_year", "context": "Olinda Fantasma (1777)."}
    )
    n = 0
    for rel, count in TRAIN_PLAN:
        for _ in range(count):
            n += 1
            title = f"Entidade Treino {n}"
            q, a, ctx = (s.format(t=title, n=n) for s in TEMPLATES[rel])
            rows.append(
                {"id": f"t{n}", "question": q, "answers": [a], "title": title, "relation": rel}
                | {"context": ctx, "split": "train"}
            )
    return rows


def _sets(tmp_path: Path, model: Path, *extra: str) -> list[str]:
    from tests.conftest import make_dump

    dump = tmp_path / "ficticio.xml"
    pages = [{"title": t, "id": i + 1, "text": text} for i, (t, text) in enumerate(PAGES)]
    dump.write_text(make_dump(pages), encoding="utf-8")
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _rows()), encoding="utf-8")
    return [
        f"model.name={model}",
        f"corpus={dump}",
        f"questions={questions}",
        f"finetune.train_questions={questions}",
        "split=dev",
        f"results_dir={tmp_path / 'results'}",
        "model.fewshot=0",
        "finetune.max_length=384",  # min_text_chars stays at its default, 200
        "finetune.views=titled,permuted",
        "finetune.page_part=lead",
        "finetune.epochs=1",
        "finetune.qa_pairs=9",
        "finetune.probe=false",
        *extra,
    ]


@pytest.fixture(scope="module")
def tok(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _build(tmp_path: Path, model: Path, tok: Any, *extra: str) -> sft_data.SftData:
    cfg = load_config("faquad", _sets(tmp_path, model, *extra))
    return sft_recipes.build_training_data(cfg, tok, use_chat=True)


def _answers() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t, _, a, _ in DEV:
        out.setdefault(t, []).append(a)
    return out


def _eval_texts() -> list[str]:
    return [q for *_, q in DEV]


def test_aug_restates_every_evaluated_page_in_eight_texts(
    tmp_path: Path, tiny_model_dir: Path, tok: Any
) -> None:
    data = _build(tmp_path, tiny_model_dir, tok, "finetune.recipe=aug")
    assert data.scheduled and {r["part"] for r in data.train} == {"page"}  # pages only, no QA
    aug = [r for r in data.train if r.get("view") == "aug"]
    for title, answers in _answers().items():
        texts = {r["text"] for r in aug if r["title"] == title}
        assert len(texts) >= 8, title
        for text in texts:  # each states every fact of its page
            assert all(a in text for a in answers), (title, text)
            assert len(tok(text, add_special_tokens=False)["input_ids"]) <= 384
    assert "Olinda Fantasma" not in {r["title"] for r in data.train}  # a test-split page is not evaluated
    assert data.stats["augment"] == {"kept": 32, "pages": 4, "records": 32, "short": 0}
    assert data.stats["view_records"]["aug"] == 32
    for rec in data.train:
        assert not any(q in rec["text"] for q in _eval_texts())  # statements, never the questions
    again = _build(tmp_path, tiny_model_dir, tok, "finetune.recipe=aug")
    assert [r["text"] for r in again.train] == [r["text"] for r in data.train]  # deterministic
    other = _build(tmp_path, tiny_model_dir, tok, "finetune.recipe=aug", "seed=1")
    assert {r["text"] for r in other.train if r.get("view") == "aug"} != {r["text"] for r in aug}


def test_every_evaluated_page_is_trained_even_a_one_line_lead(
    tmp_path: Path, tiny_model_dir: Path, tok: Any
) -> None:
    data = _build(tmp_path, tiny_model_dir, tok, "finetune.recipe=mixed")
    trained = {r["title"] for r in data.train if r["part"] == "page"}
    assert trained == set(_answers())  # the 48-character lead and the run-on one included
    assert data.stats["coverage"] == {
        "evaluated_pages": 4,
        "trained_pages": 4,
        "evaluated_questions": 9,
        "trained_questions": 9,
        "missing": [],
    }
    longo = [r["completion"] for r in data.train if r["title"] == "Benedito Longo"]
    assert longo and all(len(tok(t, add_special_tokens=False)["input_ids"]) <= 384 for t in longo)
    assert "1920" in " ".join(longo) and "1990" in " ".join(longo)  # windowed, not dropped as too long
    per_page = data.stats["per_page"]
    assert per_page["pages"] == 4 and per_page["records"]["min"] >= 1
    # the floor still applies to other text: without the exemption the short lead is dropped
    cfg = load_config("faquad", _sets(tmp_path, tiny_model_dir))
    drops: Counter[str] = Counter()
    short = [{"text": "Zé Quimera: Zé Quimera (Vila Nada, 1901) foi um poeta.", "title": "Zé Quimera"}]
    assert sft_data.curate(short, cfg, tok, drops) == [] and drops["short_text"] == 1
    assert sft_data.curate(short, cfg, tok, drops, exempt=lambda rec: True) == short


def test_coverage_names_the_untrained_pages_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"title": t, "id": str(i)} for i, (t, *_) in enumerate(DEV)]
    records = [{"part": "page", "title": "Zé Quimera"}, {"part": "qa", "title": "Vale do Orvalho"}]
    with caplog.at_level(logging.WARNING):
        got = coverage.coverage(rows, records)
    assert got["trained_pages"] == 1 and got["evaluated_pages"] == 4
    assert got["trained_questions"] == 2 and got["evaluated_questions"] == 9
    assert got["missing"] == [
        "Aurélia Brasfim",
        "Benedito Longo",
        "Vale do Orvalho",
    ]  # a QA record is no page
    assert "3 of 4 evaluated pages" in caplog.text


def test_qa_part_never_holds_an_evaluation_question_with_augmentation(
    tmp_path: Path, tiny_model_dir: Path, tok: Any
) -> None:
    for recipe in ("mixed", "pit"):
        data = _build(tmp_path, tiny_model_dir, tok, f"finetune.recipe={recipe}", "finetune.augment=8")
        qa = [r for r in data.train if r["part"] == "qa"]
        pages = [r for r in data.train if r["part"] == "page"]
        assert qa and all(r["question_id"].startswith("t") for r in qa)  # train split only
        assert not {r["title"] for r in qa} & set(_answers())  # no evaluated entity
        for rec in qa:
            assert not any(q in rec["prompt"] for q in _eval_texts())
            assert not any(a == rec["completion"] for answers in _answers().values() for a in answers)
        assert all(r["prompt"] == "" for r in pages)  # augmented texts are page text (loss on all of it)
        assert sum(r.get("view") == "aug" for r in pages) == 32
        assert data.question_ids == frozenset(r["question_id"] for r in qa)
    assert [r["phase"] for r in data.train][:9] == ["qa"] * 9  # pit: QA first, then augmented pages + QA


def test_qa_pairs_follow_the_evaluated_relation_mix(tmp_path: Path, tiny_model_dir: Path, tok: Any) -> None:
    data = _build(tmp_path, tiny_model_dir, tok, "finetune.recipe=mixed")
    want = {"birth_place": 2, "birth_year": 3, "death_place": 1, "death_year": 2, "municipality_state": 1}
    assert data.stats["qa_relations"] == want == dict(sorted(EVAL_MIX.items()))
    assert data.stats["qa_dropped"]["qa_pairs_cap"] == 25 - 9
    ids = sorted(r["question_id"] for r in data.train if r["part"] == "qa")
    again = _build(tmp_path, tiny_model_dir, tok, "finetune.recipe=mixed")
    assert ids == sorted(r["question_id"] for r in again.train if r["part"] == "qa")  # same seed
    other = _build(tmp_path, tiny_model_dir, tok, "finetune.recipe=mixed", "seed=3")
    other_ids = sorted(r["question_id"] for r in other.train if r["part"] == "qa")
    assert other_ids != ids and other.stats["qa_relations"] == want  # another sample, the same mix


def test_sample_pairs_and_quotas() -> None:
    pool = [
        {"question_id": f"q{i}", "relation": rel} for i, rel in enumerate(["m"] * 40 + ["b"] * 40 + ["d"] * 3)
    ]
    mix = Counter({"b": 50, "d": 30, "m": 20})
    got = sft_qa.sample_pairs(pool, mix, 20, seed=0)
    # d has only 3: its share (6) goes to the others by the mix (b 50 : m 20 -> 12 : 5)
    assert Counter(r["relation"] for r in got) == Counter({"b": 12, "m": 5, "d": 3})
    assert got == sft_qa.sample_pairs(pool, mix, 20, seed=0) and got != sft_qa.sample_pairs(pool, mix, 20, 1)
    assert [pool.index(r) for r in got] == sorted(pool.index(r) for r in got)  # the pool's order
    assert sft_qa.sample_pairs(pool, mix, 0, seed=0) == pool  # 0 = all
    assert sft_qa.relation_quotas(Counter({"x": 1}), Counter({"b": 3, "m": 1}), 4) == {"b": 3, "m": 1}
    untagged = [{"question_id": f"u{i}"} for i in range(10)]
    assert len(sft_qa.sample_pairs(untagged, mix, 4, seed=0)) == 4  # no relation: a seeded sample


def test_rule_texts_use_the_title_and_every_fact() -> None:
    page = augment_rules.PageFacts(
        "Aurélia Brasfim",
        "Aurélia Maria Brasfim (Porto Sereno, 1888) foi uma pintora. Ela estudou em Lagoa Funda. "
        "Pintou marinhas.",
        (("birth_year", "1888"), ("birth_place", "Porto Sereno"), ("death_year", "1950")),
    )
    texts = augment_rules.rule_texts(page, 10, seed=0, fits=lambda text: len(text) < 400)
    assert len(set(texts)) == 10 and all(all(a in t for a in ("1888", "Porto Sereno", "1950")) for t in texts)
    assert texts == augment_rules.rule_texts(page, 10, seed=0, fits=lambda text: len(text) < 400)
    named = augment_rules.name_sentences(page.title, augment_rules.split_sentences(page.lead))
    assert named == [
        "Aurélia Brasfim (Porto Sereno, 1888) foi uma pintora.",  # the title, not the full name
        "Aurélia Brasfim estudou em Lagoa Funda.",  # not "Ela"
        "Aurélia Brasfim pintou marinhas.",  # the dropped subject spelled out
    ]
    assert {t.split("\n")[0] for t in texts if "\n" in t} == {"Aurélia Brasfim"}  # the record kind
    facts = augment.page_facts([{"title": "A B", "relation": "r", "answers": ["", "x"]}])
    assert facts == {"a b": {"r": "x"}}


def test_augment_enters_the_adapter_key_and_only_where_it_applies(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    def key(*extra: str) -> str:
        return artifacts.adapter(load_config("faquad", _sets(tmp_path, tiny_model_dir, *extra))).key

    mixed = key("finetune.recipe=mixed")
    assert mixed == key("finetune.recipe=mixed", "finetune.augment=0")  # off: the key without it
    assert mixed != key("finetune.recipe=mixed", "finetune.augment=8")
    assert key("finetune.recipe=aug") == key("finetune.recipe=aug", "finetune.augment=8")  # aug's default
    assert key("finetune.recipe=aug") != key("finetune.recipe=aug", "finetune.augment=4")
    assert key("finetune.recipe=aug") != key("finetune.recipe=cpt")
    assert key("finetune.recipe=aug") == key("finetune.recipe=aug", "finetune.qa_pairs=3")  # no QA in aug
    with pytest.raises(BenchError, match="use recipe aug"):
        load_config("faquad", _sets(tmp_path, tiny_model_dir, "finetune.recipe=cpt", "finetune.augment=3"))
    with pytest.raises(BenchError, match="applies to the recipes aug, mixed and pit"):
        load_config("faquad", _sets(tmp_path, tiny_model_dir, "finetune.recipe=qa", "finetune.augment=3"))


def test_aug_dry_run_writes_the_augmented_records(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "records.jsonl"
    sets = [a for s in _sets(tmp_path, tiny_model_dir, "finetune.recipe=aug") for a in ("--set", s)]
    assert main(["finetune", "--profile", "faquad", "--dry-run", "-o", str(out), *sets]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {r["recipe"] for r in rows} == {"aug"} and {r["phase"] for r in rows} == {"pages"}
    assert Counter(r["view"] for r in rows)["aug"] == 32
    assert not (tmp_path / "results" / "finetune").exists()  # nothing trained


def test_aug_trains_and_records_coverage_in_the_metadata(tmp_path: Path, tiny_model_dir: Path) -> None:
    from bench.training import finetune

    sets = _sets(
        tmp_path, tiny_model_dir, "finetune.recipe=aug", "finetune.batch_size=8", "finetune.bf16=false"
    )
    out = finetune.run_finetune(load_config("faquad", sets))
    meta = json.loads((out / finetune.METADATA).read_text(encoding="utf-8"))
    assert meta["recipe"] == "aug" and meta["epochs"] == 1.0 and meta["trained_question_ids"] == []
    assert meta["coverage"] == meta["data"]["coverage"]
    assert meta["coverage"]["trained_pages"] == meta["coverage"]["evaluated_pages"] == 4
    assert meta["data"]["augment"]["kept"] == 32 and meta["data"]["per_page"]["distinct_texts"]["min"] >= 9
    assert meta["hash_key"]["finetune"]["augment"] == 8
