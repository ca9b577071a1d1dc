"""Fine-tuning recipes (cpt / mixed / pit) on fictional Portuguese pages and questions invented here: the dry
run's records, the leakage guard on question text and entity, the schedule, the adapter key, the answer-level
probe, and two fresh trainings of one key giving the same adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import artifacts, recipe_keys
from bench.__main__ import main
from bench.config import BenchError, load_config
from bench.training import finetune, recipes, train_meta
from tests.conftest import make_dump

# Fictional places: no model has seen them, so nothing here is real knowledge.
PAGES = [
    (
        "Vila Quaresma",
        "'''Vila Quaresma''' é uma cidade fictícia do planalto de Ternura, fundada em 1787 por pescadores. "
        "A cidade tem cerca de 12 mil habitantes.\n\n== História ==\nEm 1822 a vila recebeu foral do rei "
        "Anselmo. O mercado velho ardeu em 1901.\n\n== Cultura ==\nA festa do milho acontece em maio.",
    ),
    (
        "Rio Pardelo",
        "'''Rio Pardelo''' é um rio imaginário que nasce na serra de Albarda e desagua no lago Corvo. "
        "Tem 214 quilómetros de comprimento.\n\n== Fauna ==\nNo rio vivem lontras e garças-brancas.",
    ),
    (
        "Serra de Albarda",
        "'''Serra de Albarda''' é uma serra inventada com 1630 metros de altitude, coberta de castanheiros. "
        "É a nascente do rio Pardelo.\n\n== Clima ==\nNeva quase todos os invernos na serra.",
    ),
    (
        "Lago Corvo",
        "'''Lago Corvo''' é um lago fictício de água doce, onde desagua o rio Pardelo. A sua profundidade "
        "máxima é de 41 metros.\n\n== Pesca ==\nA pesca da truta é permitida de março a julho.",
    ),
]
DEV = [  # the evaluation asks about Vila Quaresma and Rio Pardelo
    ("d1", "Em que ano foi fundada Vila Quaresma?", "1787", "Vila Quaresma", "mid"),
    ("d2", "Onde desagua o rio Pardelo?", "lago Corvo", "Rio Pardelo", "low"),
]
TRAIN = [  # Albarda and Corvo are train-split entities; t3 and t4 must never be trained
    ("t1", "Qual é a altitude da Serra de Albarda?", "1630 metros", "Serra de Albarda"),
    ("t2", "Qual é a profundidade máxima do Lago Corvo?", "41 metros", "Lago Corvo"),
    ("t3", "Quantos habitantes tem Vila Quaresma?", "12 mil", "Vila Quaresma"),  # an evaluation entity
    ("t4", "Em que ano foi fundada Vila Quaresma?", "1787", "Vila Quaresma"),  # an evaluation question
    ("t5", "Que árvores cobrem a Serra de Albarda?", "castanheiros", "Serra de Albarda"),
]


def _write(tmp_path: Path) -> tuple[Path, Path]:
    pages = [{"title": t, "id": i + 1, "text": text} for i, (t, text) in enumerate(PAGES)]
    dump = tmp_path / "ficticio.xml"
    dump.write_text(make_dump(pages), encoding="utf-8")
    rows = [
        {"id": i, "question": q, "answers": [a], "title": t, "context": f"{t}: {a}.", "split": "dev"}
        | {"stratum": s, "relation": "fact"}
        for i, q, a, t, s in DEV
    ]
    rows += [
        {"id": i, "question": q, "answers": [a], "title": t, "context": f"{t} ({a})", "split": "train"}
        for i, q, a, t in TRAIN
    ]
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return dump, questions


def _sets(tmp_path: Path, model: Path, *extra: str) -> list[str]:
    dump, questions = _write(tmp_path)
    return [
        f"model.name={model}",
        f"corpus={dump}",
        f"questions={questions}",
        f"finetune.train_questions={questions}",
        "split=dev",
        f"results_dir={tmp_path / 'results'}",
        "model.fewshot=0",
        "finetune.min_text_chars=10",
        "finetune.max_length=384",
        "finetune.batch_size=2",
        "finetune.views=plain,titled,permuted",
        "finetune.epochs=2",
        "finetune.learning_rate=0.01",
        "finetune.warmup_steps=0",
        "finetune.lora_r=4",
        "finetune.bf16=false",
        "finetune.logging_steps=1",
        *extra,
    ]


def _dry_run(tmp_path: Path, model: Path, *extra: str) -> list[dict[str, Any]]:
    out = tmp_path / "records.jsonl"
    sets = [a for s in _sets(tmp_path, model, *extra) for a in ("--set", s)]
    assert main(["finetune", "--profile", "faquad", "--dry-run", "-o", str(out), *sets]) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_mixed_dry_run_holds_pages_and_train_qa_never_the_evaluation(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    rows = _dry_run(tmp_path, tiny_model_dir, "finetune.recipe=mixed")
    assert not (tmp_path / "results" / "finetune").exists()  # nothing trained
    pages = [r for r in rows if r["part"] == "page"]
    qa = [r for r in rows if r["part"] == "qa"]
    body = "\n".join(r["completion"] for r in pages)
    assert "fundada em 1787" in body and "desagua no lago Corvo" in body  # the evaluated pages' text
    assert {r["title"] for r in pages} == {"Vila Quaresma", "Rio Pardelo"}  # scope = question pages
    assert "1822" in body and "festa do milho" not in body  # page_part: lead + first section (not the 2nd)
    assert "Neva" not in body  # a train entity's page is not trained
    assert {r["view"] for r in pages} == {"plain", "titled", "permuted"}
    assert all(r["prompt"] == "" for r in pages) and all("Pergunta:" in r["prompt"] for r in qa)
    assert {r["question_id"] for r in qa} == {"t1", "t2", "t5"} and {r["title"] for r in qa} == {
        "Serra de Albarda",
        "Lago Corvo",
    }
    for r in rows:  # never an evaluation question, never a question about an evaluation entity
        text = r.get("prompt", "") + r.get("completion", "")
        assert (
            "Em que ano foi fundada" not in text
            and "Onde desagua" not in text
            and "habitantes tem" not in text
        )
    assert {r["epoch"] for r in rows} == {0, 1} and rows[0]["phase"] == "pages+qa"
    assert len(pages) == 2 * len({r["completion"] for r in pages})  # two exposures of each page record
    assert [r["position"] for r in rows] == list(range(len(rows)))


def test_pit_puts_qa_first_and_cpt_has_no_qa(tmp_path: Path, tiny_model_dir: Path) -> None:
    pit = _dry_run(tmp_path, tiny_model_dir, "finetune.recipe=pit", "finetune.pit_qa_epochs=2")
    phases = [r["phase"] for r in pit]
    assert phases[:6] == ["qa"] * 6 and set(phases[6:]) == {"pages+qa"}  # 2 passes over 3 QA pairs first
    cpt = _dry_run(tmp_path, tiny_model_dir, "finetune.recipe=cpt", "finetune.page_part=page")
    assert {r["part"] for r in cpt} == {"page"} and all("text" in r for r in cpt)
    assert "festa do milho" in "\n".join(r["text"] for r in cpt)  # the whole page
    lead = _dry_run(tmp_path, tiny_model_dir, "finetune.recipe=cpt", "finetune.page_part=lead")
    text = "\n".join(r["text"] for r in lead)
    assert "fundada em 1787" in text and "1822" not in text  # the lead only


def test_schedule_budget_and_order_are_seeded() -> None:
    ft = load_config("faquad", ["finetune.epochs=2.5", "finetune.batch_size=1"]).finetune
    pages = [{"text": f"p{i}", "part": "page"} for i in range(4)]
    qa = [{"prompt": "q", "completion": f"a{i}", "part": "qa"} for i in range(2)]
    seq = recipes.schedule("mixed", pages, qa, ft, seed=0)
    assert len(seq) == 6 + 6 + 3 and recipes.page_exposures(seq, 4) == pytest.approx(2.0, abs=0.6)
    assert seq == recipes.schedule("mixed", pages, qa, ft, seed=0)
    assert seq != recipes.schedule("mixed", pages, qa, ft, seed=1)
    capped = load_config(
        "faquad", ["finetune.epochs=0", "finetune.max_steps=5", "finetune.batch_size=2"]
    ).finetune
    assert len(recipes.schedule("cpt", pages, [], capped, seed=0)) == 10  # 3 passes, cut to 5 batches
    with pytest.raises(BenchError, match=r"unknown finetune\.recipe"):
        recipe_keys.recipe_of(load_config("faquad", ["finetune.recipe=rag"]).finetune)


def test_adapter_key_changes_only_with_the_training_data(tmp_path: Path, tiny_model_dir: Path) -> None:
    def key(*extra: str) -> str:
        return artifacts.adapter(load_config("faquad", _sets(tmp_path, tiny_model_dir, *extra))).key

    assert key("finetune.train_format=qa") == key("finetune.recipe=qa")  # the deprecated alias
    assert key("finetune.train_format=text") == key("finetune.recipe=text", "finetune.page_part=page")
    assert key("finetune.recipe=mixed") == key("finetune.recipe=mixed", "finetune.pit_qa_epochs=3")
    assert key("finetune.recipe=cpt") == key("finetune.recipe=cpt", "finetune.qa_pairs=7")  # cpt has no QA
    assert key("finetune.recipe=cpt") != key("finetune.recipe=cpt", "finetune.page_part=page")
    assert key("finetune.recipe=mixed") != key("finetune.recipe=pit")


def test_mixed_trains_with_answer_probe_and_leakage_counts(tmp_path: Path, tiny_model_dir: Path) -> None:
    cfg = load_config("faquad", _sets(tmp_path, tiny_model_dir, "finetune.recipe=mixed", "finetune.epochs=3"))
    out = finetune.run_finetune(cfg)
    meta = json.loads((out / finetune.METADATA).read_text(encoding="utf-8"))
    assert meta["recipe"] == "mixed" and meta["epochs"] == 3.0  # exposures of each page record
    assert meta["trained_question_ids"] == ["t1", "t2", "t5"]
    leak = meta["leakage"]
    assert leak["eval_questions"] == 2 and leak["eval_entities"] == 2 and leak["kept"] == 3
    assert leak["dropped_same_question_text"] == 1 and leak["dropped_eval_entity"] == 1
    probe = meta["probe"]
    assert set(probe["before"]["answers"]) == {"d1", "d2"} and probe["answer_nll_questions"] == 2
    assert probe["answer_nll_before"] > 0 and probe["answer_nll_after"] != probe["answer_nll_before"]
    assert set(probe["answer_nll_by_stratum"]) == {"mid", "low"}
    assert probe["answer_nll_by_relation"]["fact"]["n"] == 2
    assert meta["threads"] == meta["reproducibility"]["threads"] >= 1
    fields = train_meta.answer_probe_fields(out, ["d1", "d2"])
    assert fields is not None and fields["answer_nll_after"] == probe["answer_nll_after"]
    assert train_meta.answer_probe_fields(out, ["d1"]) is None  # measured on other questions


def test_two_fresh_trainings_of_one_key_give_the_same_adapter(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Same key, two empty results folders: the adapters are bitwise equal (same machine and thread count;
    LoRA dropout on, so its seeding is covered too)."""
    from safetensors.torch import load_file

    extra = ("finetune.recipe=mixed", "finetune.lora_dropout=0.1", "finetune.probe=false")
    weights = []
    for name in ("a", "b"):
        sets = [*_sets(tmp_path, tiny_model_dir, *extra), f"results_dir={tmp_path / name}"]
        out = finetune.run_finetune(load_config("faquad", sets))
        weights.append(load_file(str(out / "adapter_model.safetensors")))
    a, b = weights
    assert a.keys() == b.keys() and len(a) > 0
    assert all(bool((a[k] == b[k]).all()) for k in a)
    lora_b = [k for k in a if "lora_B" in k]
    assert any(bool(a[k].abs().sum() > 0) for k in lora_b)  # it trained: B starts at zero


def test_a_snapshot_on_the_way_is_the_adapter_of_that_budget(tmp_path: Path, tiny_model_dir: Path) -> None:
    """epochs=2 trained alone and saved as a snapshot of an epochs=4 run (constant rate after warmup): the
    same key, bitwise equal weights, and the snapshot's own probe and metadata."""
    from safetensors.torch import load_file

    extra = ("finetune.recipe=mixed", "finetune.lr_scheduler=constant_with_warmup", "finetune.warmup_steps=2")
    alone_cfg = load_config(
        "faquad", [*_sets(tmp_path, tiny_model_dir, *extra), f"results_dir={tmp_path / 'a'}"]
    )
    alone = finetune.run_finetune(alone_cfg)
    long_sets = [*_sets(tmp_path, tiny_model_dir, *extra), f"results_dir={tmp_path / 'b'}"]
    long_cfg = load_config("faquad", [*long_sets, "finetune.epochs=4", "finetune.snapshot_epochs=2"])
    finetune.run_finetune(long_cfg)
    snap_cfg = load_config("faquad", long_sets)  # epochs=2 in folder b: the snapshot's key
    snap = finetune.adapter_dir(snap_cfg)
    assert snap.name == alone.name and (snap / finetune.METADATA).exists()
    a = load_file(str(alone / "adapter_model.safetensors"))
    b = load_file(str(snap / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    meta_a = json.loads((alone / finetune.METADATA).read_text(encoding="utf-8"))
    meta_b = json.loads((snap / finetune.METADATA).read_text(encoding="utf-8"))
    assert meta_b["steps"] == meta_a["steps"] and meta_b["epochs"] == meta_a["epochs"] == 2.0
    assert meta_b["tokens_seen"] == meta_a["tokens_seen"] and meta_b["snapshot_of"]["epochs"] == 4.0
    assert meta_b["probe"]["answer_nll_after"] == pytest.approx(meta_a["probe"]["answer_nll_after"], abs=1e-6)
    final = finetune.adapter_dir(long_cfg)
    c = load_file(str(final / "adapter_model.safetensors"))
    assert any(not bool((a[k] == c[k]).all()) for k in a)  # and the run went on past it


def test_snapshots_refuse_a_decaying_rate_and_a_cut_batch(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(BenchError, match="constant_with_warmup"):
        load_config(
            "faquad", _sets(tmp_path, tiny_model_dir, "finetune.epochs=4", "finetune.snapshot_epochs=2")
        )
    with pytest.raises(BenchError, match=r"\(0, finetune.epochs=4.0\)"):
        load_config(
            "faquad",
            _sets(
                tmp_path,
                tiny_model_dir,
                "finetune.lr_scheduler=constant_with_warmup",
                "finetune.epochs=4",
                "finetune.snapshot_epochs=4",
            ),
        )
    # mixed: epoch 1 ends inside a batch of 2 (its record count is odd)
    sets = _sets(
        tmp_path,
        tiny_model_dir,
        "finetune.recipe=mixed",
        "finetune.lr_scheduler=constant_with_warmup",
        "finetune.epochs=2",
        "finetune.snapshot_epochs=1",
    )
    with pytest.raises(BenchError, match="end inside a batch"):
        finetune.run_finetune(load_config("faquad", sets))


def test_compare_tells_equal_adapters_from_different_ones(tmp_path: Path, tiny_model_dir: Path) -> None:
    from bench.training import compare

    base = _sets(tmp_path, tiny_model_dir, "finetune.recipe=cpt", "finetune.probe=false")
    a = finetune.run_finetune(load_config("faquad", [*base, f"results_dir={tmp_path / 'a'}"]))
    b = finetune.run_finetune(load_config("faquad", [*base, f"results_dir={tmp_path / 'b'}"]))
    other = finetune.run_finetune(load_config("faquad", [*base, "finetune.epochs=1"]))
    same = compare.compare(a, b)
    assert same["bitwise_equal"] and same["same_key"] and same["max_abs_diff"] == 0.0
    assert same["tensors"] == same["bitwise_equal_tensors"] > 0
    diff = compare.compare(a, other)
    assert not diff["bitwise_equal"] and not diff["same_key"] and diff["max_abs_diff"] > 0
    out = tmp_path / "repro.json"
    assert compare.main([str(a), str(b), "-o", str(out)]) == 0
    assert "**bitwise equal**" in compare.render(json.loads(out.read_text(encoding="utf-8")))


def test_the_snapshot_check_knows_every_scheduled_recipe(tmp_path: Path, tiny_model_dir: Path) -> None:
    base = ("finetune.lr_scheduler=constant_with_warmup", "finetune.epochs=4", "finetune.snapshot_epochs=2")
    for recipe in recipe_keys.RECIPES:
        sets = _sets(tmp_path, tiny_model_dir, *base, f"finetune.recipe={recipe}")
        if recipe in recipe_keys.SCHEDULED:
            load_config("faquad", sets)
        else:
            with pytest.raises(BenchError, match="needs a scheduled recipe"):
                load_config("faquad", sets)


def test_exposure_order_makes_a_fraction_of_a_pass_whole_exposures_per_page() -> None:
    """finetune.order = "exposure": the first e/R of a pass holds e records of every page (R per page) and
    its share of the QA pairs; a pass's order does not depend on the budget (snapshots stay prefixes)."""
    import dataclasses
    from collections import Counter

    from bench.config import FinetuneConfig
    from bench.training import recipes

    pages = [{"title": f"P{p}", "text": f"P{p} t{i}", "part": "page"} for p in range(6) for i in range(4)]
    qa = [{"prompt": f"q{i}", "completion": "a", "part": "qa"} for i in range(8)]
    ft = dataclasses.replace(
        FinetuneConfig(), recipe="mixed", order="exposure", views=("a", "b", "c", "d"), page_chunks=1
    )
    assert recipes.records_per_page(ft) == 4
    full = recipes.schedule("mixed", pages, qa, dataclasses.replace(ft, epochs=2.0), seed=3)
    for e in (1, 2, 3, 5):
        part = recipes.schedule("mixed", pages, qa, dataclasses.replace(ft, epochs=e / 4), seed=3)
        assert part == full[: len(part)]
        per_page = Counter(r["title"] for r in part if r["part"] == "page")
        assert set(per_page.values()) == {e} and len(per_page) == 6
        assert sum(r["part"] == "qa" for r in part) == round(8 * e / 4)
    shuffled = recipes.schedule(
        "mixed", pages, qa, dataclasses.replace(ft, order="shuffle", epochs=0.25), seed=3
    )
    assert len(set(Counter(r["title"] for r in shuffled if r["part"] == "page").values())) > 1
