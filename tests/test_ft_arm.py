"""The fine-tuning arm: budget in epochs, scope and views, the evaluation prompt in qa/raft records, the
injection probe, build costs in scores.json and the sweep + learning curve (tiny model, real stages)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import artifacts
from bench.config import BenchError, load_config
from bench.core.prompts import build_messages
from bench.eval import costs, sweep
from bench.generation.base import plain_prompt
from bench.ingest.corpus import Article, Section
from bench.reporting import curves
from bench.reporting.costs import render_costs, render_ft_arm
from bench.training import finetune, sft_qa, sft_views


def _art(title: str, *sections: tuple[str, str]) -> Article:
    secs = tuple(Section(h, t) for h, t in sections)
    return Article(len(title), title, "\n\n".join(t for _, t in sections), secs)


def _questions(tmp_path: Path, titles: list[str], split: str = "dev") -> Path:
    rows = [
        {"id": f"q{i}", "question": f"Pergunta {i}?", "answers": ["x"], "title": t, "split": split}
        for i, t in enumerate(titles)
    ]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_planned_steps() -> None:
    assert finetune.planned_steps(0, 16, 100, 4) == 16  # epochs 0: max_steps decides
    assert finetune.planned_steps(3, 0, 10, 4) == 9  # 3 passes × ceil(10 / 4)
    assert finetune.planned_steps(2.5, 0, 8, 4) == 5
    assert finetune.planned_steps(10, 7, 10, 4) == 7  # max_steps caps
    with pytest.raises(BenchError, match="nothing to train"):
        finetune.planned_steps(0, 0, 10, 4)


def test_question_pages_scope_matches_titles_and_holds_out_the_rest(tmp_path: Path) -> None:
    q = _questions(tmp_path, ["LISBOA", "Porto"])
    pages = [_art("Lisboa", ("", "Lisboa é a capital.")), _art("Berlim", ("", "Berlim fica na Alemanha."))]
    cfg = load_config("faquad", [f"questions={q}", "split=dev", "finetune.scope=question_pages"])
    trained, held, stats = sft_views.split_pages(cfg, pages)
    assert [a.title for a in trained] == ["Lisboa"] and [a.title for a in held] == ["Berlim"]
    assert stats["pages"] == 1 and stats["question_titles_missing"] == ["porto"]
    roma = _questions(tmp_path, ["Roma"])
    none = load_config("faquad", [f"questions={roma}", "finetune.scope=question_pages"])
    with pytest.raises(BenchError, match="none of the 1 question titles"):
        sft_views.split_pages(none, pages)
    with pytest.raises(BenchError, match=r"unknown finetune\.scope"):
        sft_views.split_pages(load_config("faquad", ["finetune.scope=pages"]), pages)


def test_corpus_scope_holds_out_every_50th_non_question_page(tmp_path: Path) -> None:
    q = _questions(tmp_path, ["Página 0"])
    pages = [_art(f"Página {i}", ("", "Texto.")) for i in range(400)]
    cfg = load_config("faquad", [f"questions={q}", "split=dev", "finetune.scope=corpus"])
    trained, held, _ = sft_views.split_pages(cfg, pages)
    assert len(trained) + len(held) == 400 and 2 <= len(held) <= 20
    assert "Página 0" in {a.title for a in trained}
    off = load_config("faquad", [f"questions={q}", "split=dev", "finetune.scope=corpus", "probe=false"])
    assert len(sft_views.split_pages(off, pages)[0]) == 400  # no probe: nothing held out


def test_views_put_facts_in_other_phrasings() -> None:
    def tokenize(text: str) -> list[int]:
        return [0] * len(text.split())

    body = " ".join(f"Frase número {i} sobre Lisboa." for i in range(12))
    art = _art("Lisboa", ("", "Lisboa é a capital de Portugal."), ("História", body))
    titled = list(sft_views.titled_view(art, tokenize, 20))
    assert titled[0] == "Lisboa: Lisboa é a capital de Portugal."
    assert all(t.startswith("Lisboa — História: ") for t in titled[1:]) and len(titled) > 2
    windows = list(sft_views.windows_view(art, tokenize, 20))
    assert windows and not windows[0].startswith("Lisboa é a capital")  # starts a third of a record in
    recs, counts = sft_views.view_records([art], ("plain", "titled"), tokenize, 20, lambda p: [{"text": "p"}])
    assert counts == {"plain": 1, "titled": len(titled)} and {r["view"] for r in recs} == {"plain", "titled"}
    with pytest.raises(BenchError, match="views"):
        sft_views.view_records([art], ("shuffled",), tokenize, 20, lambda p: [])


def test_qa_and_raft_records_use_the_evaluation_prompt(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [
        {"id": f"t{i}", "question": f"Onde fica {c}?", "answers": [c], "title": c, "context": f"{c} fica lá."}
        for i, c in enumerate(["Lisboa", "Porto", "Braga", "Faro"])
    ]
    qa = sft_qa.qa_records(rows, tok, True, raft=False, seed=0)
    expected = tok.apply_chat_template(
        build_messages("Onde fica Lisboa?", [], "extractive", 0), tokenize=False, add_generation_prompt=True
    )
    assert qa[0]["prompt"] == expected and qa[0]["completion"] == "Lisboa"  # the span, not a sentence
    assert "### Instruction" not in qa[0]["prompt"]
    plain = sft_qa.qa_records(rows, tok, False, raft=False, seed=0)
    assert plain[0]["prompt"] == plain_prompt(build_messages("Onde fica Lisboa?", [], "extractive", 0))
    raft = sft_qa.qa_records(rows, tok, True, raft=True, seed=0, no_gold=0.5)
    with_gold = [r for r, row in zip(raft, rows, strict=True) if f"{row['context']}" in r["prompt"]]
    assert 0 < len(with_gold) < len(raft)  # some records lack the gold paragraph
    assert all("Contexto:" in r["prompt"] and r["prompt"].count("\n3. ") == 1 for r in raft)


def _ft_cfg(tmp_path: Path, model: Path, corpus: Path, questions: Path, *extra: str) -> Any:
    return load_config(
        "faquad",
        [
            f"model.name={model}",
            f"corpus={corpus}",
            f"questions={questions}",
            "split=dev",
            f"results_dir={tmp_path / 'results'}",
            "min_text_chars=10",
            "finetune.max_length=64",
            "finetune.batch_size=1",
            "finetune.max_steps=0",
            "finetune.scope=question_pages",
            "finetune.views=plain,titled",
            "learning_rate=0.01",
            "warmup_steps=0",
            "lora_r=8",
            "lora_dropout=0",
            "logging_steps=1",
            *extra,
        ],
    )


def test_epochs_scope_and_injection_probe(tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path) -> None:
    q = _questions(tmp_path, ["Lisboa"])  # Berlim is the held-out page
    cfg = _ft_cfg(tmp_path, tiny_model_dir, tiny_dump, q, "finetune.epochs=10", "finetune.views=plain")
    out = finetune.run_finetune(cfg)
    meta = json.loads((out / finetune.METADATA).read_text(encoding="utf-8"))
    assert meta["scope"] == "question_pages" and meta["pages"] == 1 and meta["epochs"] == 10.0
    assert meta["steps"] == 10 * meta["train_records"] and meta["tokens_seen"] > meta["train_tokens"] * 3
    assert meta["data"]["view_records"] == {"plain": meta["train_records"]}
    probe = meta["probe"]
    assert probe["probe_trained_tokens"] > 0 and probe["probe_heldout_tokens"] > 0
    # the trained page was learned far more than the page the adapter never saw (measured: -0.67 vs -0.02)
    gain_trained = probe["nll_trained_before"] - probe["nll_trained_after"]
    gain_heldout = probe["nll_heldout_before"] - probe["nll_heldout_after"]
    assert gain_trained > 0.3 and gain_trained > 5 * abs(gain_heldout), probe
    cost = costs.finetune_cost(out)
    assert cost is not None and cost["epochs"] == 10.0 and cost["probe"]["ppl_trained_after"] > 1


def _profile(tmp_path: Path, model: Path, corpus: Path, questions: Path) -> Path:
    text = f"""
corpus = "{corpus}"
questions = "{questions}"
split = "dev"
sample = "first"
limit = 0
results_dir = "{tmp_path / "results"}"
[index]
embedder = "hashing"
embedder_model = "32"
chunk_tokens = 64
chunk_overlap = 8
[model]
name = "{model}"
backend = "transformers"
dtype = "float32"
max_new_tokens = 4
[finetune]
recipe = "text"
views = ["plain"]
max_length = 64
batch_size = 2
max_steps = 0
min_text_chars = 10
scope = "question_pages"
learning_rate = 0.01
[run]
bootstrap_samples = 50
"""
    path = tmp_path / "tiny.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_grid_parsing_and_plan(tmp_path: Path, tiny_questions: Path, tiny_dump: Path) -> None:
    fixed, axes = sweep.parse_grid(["epochs=0,1,3", "recipe=text,qa", "lora_r=4", "views=plain|plain,titled"])
    assert fixed == ["lora_r=4"]
    assert axes == {
        "epochs": ["0", "1", "3"],
        "recipe": ["text", "qa"],
        "views": ["plain", "plain,titled"],
    }
    points = sweep.plan(
        None, [f"questions={tiny_questions}", f"corpus={tiny_dump}", "epochs=0,1,3", "lora_r=4,8"]
    )
    names = [p["name"] for p in points]
    assert names == [
        sweep.REFERENCE,
        "epochs-1_lora_r-4",
        "epochs-1_lora_r-8",
        "epochs-3_lora_r-4",
        "epochs-3_lora_r-8",
    ]
    assert points[0]["cfg"].run.variants == sweep.REFERENCE_VARIANTS
    assert points[1]["cfg"].run.variants == sweep.POINT_VARIANTS and points[1]["cfg"].finetune.lora_r == 4


def test_sweep_two_points_and_learning_curve(
    tmp_path: Path, tiny_model_dir: Path, tiny_dump: Path, tiny_questions: Path
) -> None:
    from bench.reporting import report

    profile = _profile(tmp_path, tiny_model_dir, tiny_dump, tiny_questions)
    root = sweep.run_sweep(str(profile), ["finetune.epochs=0,1,2"], "tiny", out_root=tmp_path / "sweeps")
    manifest, scores = sweep.load_sweep(root)
    assert [p["name"] for p in manifest["points"]] == ["reference", "epochs-1", "epochs-2"]
    one, two = (scores[n]["costs"]["finetune"] for n in ("epochs-1", "epochs-2"))
    assert one["epochs"] == 1.0 and two["epochs"] == 2.0 and two["tokens_seen"] > one["tokens_seen"] > 0
    assert set(scores["epochs-1"]["variants"]) == {"ft", "ft_rag"}
    assert scores["epochs-1"]["variants"]["ft"]["ppl_trained_after"] > 0
    assert scores["epochs-1"]["costs"]["index"]["chunks"] > 0
    rows = curves.curve_rows(manifest, scores)
    assert [r["epochs"] for r in rows] == [0.0, 1.0, 2.0]
    assert rows[0]["ft"] == scores["reference"]["variants"]["base"]  # 0 epochs = the untrained model
    out = report.render([root / "reference"], tmp_path / "REPORT.md", sweeps=[root])
    text = out.read_text(encoding="utf-8")
    assert "## Learning curve — sweep `tiny`" in text and "![learning curve](REPORT-curve-tiny.png)" in text
    assert (tmp_path / "REPORT-curve-tiny.png").stat().st_size > 10_000
    assert all(f"| FT | {e} |" in text for e in ("0.00", "1.00", "2.00"))  # one series, by budget
    assert "| picker (retrieved) |" in text  # the no-model reference lines are in the table too
    assert f"**FT**: from the untrained model to 2.0 epochs ({two['tokens_seen']:,} tokens seen)" in text
    # a rerun reuses every stage: same answers, no training
    before = (root / "epochs-2" / "answers.jsonl").read_text(encoding="utf-8")
    sweep.run_sweep(str(profile), ["finetune.epochs=0,1,2"], "tiny", out_root=tmp_path / "sweeps")
    assert (root / "epochs-2" / "answers.jsonl").read_text(encoding="utf-8") == before


def test_render_costs_names_what_each_variant_paid() -> None:
    scores = {
        "variants": {
            "base": {"latency_p50_ms": 900.0, "peak_rss_mb": 3000, "exact_match": {"mean": 0.0}},
            "ft_rag": {"latency_p50_ms": 2100.0, "peak_rss_mb": 3500, "exact_match": {"mean": 0.2}},
        },
        "costs": {
            "index": {"chunks": 2287, "build_s": 243.0},
            "finetune": {
                "train_time_s": 400.0,
                "tokens_seen": 48000,
                "epochs": 5.0,
                "pages": 14,
                "peak_rss_mb": 5000,
            },
        },
    }
    text = render_costs(scores)
    assert text is not None
    base = next(line for line in text.splitlines() if line.startswith("| base"))
    ft_rag = next(line for line in text.splitlines() if line.startswith("| ft_rag"))
    assert "| none |" in base and "900" in base
    assert (
        "index: 2,287 chunks, 243 s" in ft_rag
        and "training: 400 s, 48,000 tokens (5.0 epochs over 14 pages)" in ft_rag
    )
    assert render_costs({"variants": scores["variants"]}) is None


def test_train_speed_and_curve_summary_are_rendered_from_data() -> None:
    result = {
        "steps": 8,
        "batch": "4 x 128",
        "order": "previous, fp32, bf16, bf16, fp32, previous",
        "threads": 2,
        "cpu": "AMD EPYC",
        "configs": {"previous": ["finetune.bf16=false"], "bf16": ["(default profile)"]},
        "tokens_per_s": {"previous": 40.0, "bf16": 120.0},
        "s_per_step": {"previous": 12.0, "bf16": 3.8},
        "ratio_bf16_over_previous": 3.0,
        "ratio_bf16_over_fp32": 2.2,
        "ratio_fp32_over_previous": 1.36,
        "goal": 2.5,
        "goal_met": True,
        "final_loss": {"previous": 2.93, "bf16": 2.94},
        "final_loss_rel_gap": 0.0034,
        "precision": {"previous": "lora: float32", "bf16": "lora: bfloat16"},
    }
    text = curves.render_train_speed(result)
    assert "**3.00×** tokens/s (goal 2.5×: met); of which bf16 alone 2.20×" in text
    assert "| bf16 | `(default profile)` | lora: bfloat16 | 3.80 | 120.0 |" in text
    assert "Machine:" not in text  # an early JSON has no machine record
    busy = {"cpu_model": "AMD EPYC", "cores": 2, "wall_s": 100.0, "others_cpu_s": 40.0, "own_cpu_s": 150.0}
    assert "Machine: *contended* — AMD EPYC" in curves.render_train_speed({**result, "machine": busy})
    em = {"exact_match": {"mean": 0.0}}
    rows = [
        {
            "series": "text",
            "epochs": 0.0,
            "tokens_seen": 0,
            "ft": em,
            "ft_rag": {"exact_match": {"mean": 0.2}},
            "probe": {},
        },
        {
            "series": "text",
            "epochs": 3.0,
            "tokens_seen": 30000,
            "ft": {"exact_match": {"mean": 0.05}},
            "ft_rag": {"exact_match": {"mean": 0.25}},
            "probe": {
                "ppl_trained_before": 20.0,
                "ppl_trained_after": 1.5,
                "ppl_heldout_before": 18.0,
                "ppl_heldout_after": 25.0,
            },
        },
    ]
    (line,) = curves.summarize_curve(rows)
    assert line.startswith(
        "**text**: from the untrained model to 3.0 epochs (30,000 tokens seen), FT EM 0.000 → 0.050"
    )
    assert (
        "FT+RAG EM 0.200 → 0.250" in line
        and "trained pages 20.0 → 1.5, of held-out pages 18.0 → 25.0" in line
    )


def test_a_constant_rate_curve_trains_once_largest_budget_first(
    tiny_questions: Path, tiny_dump: Path
) -> None:
    sets = [f"questions={tiny_questions}", f"corpus={tiny_dump}", "finetune.recipe=cpt", "epochs=0,2,4,8"]
    constant = sweep.plan(None, [*sets, "finetune.lr_scheduler=constant_with_warmup"])
    sweep._snapshot_budgets(constant)
    order = sweep.run_order(constant)
    assert [p["name"] for p in order] == [sweep.REFERENCE, "epochs-8", "epochs-4", "epochs-2"]
    assert order[1]["cfg"].finetune.snapshot_epochs == (2.0, 4.0)
    assert order[3]["cfg"].finetune.snapshot_epochs == ()
    keys = [artifacts.adapter(p["cfg"]).key for p in constant[1:]]
    plain = [
        artifacts.adapter(p["cfg"]).key
        for p in sweep.plan(None, [*sets, "lr_scheduler=constant_with_warmup"])[1:]
    ]
    assert keys == plain  # snapshots do not change an adapter's key
    linear = sweep.plan(None, [*sets, "finetune.lr_scheduler=linear"])
    sweep._snapshot_budgets(linear)
    assert all(p["cfg"].finetune.snapshot_epochs == () for p in linear)  # a decaying rate: each trains alone


def test_ft_arm_sentence_is_read_from_the_run() -> None:
    """README's description of the FT adapter comes from the run's config and training record."""
    ft = {"epochs": 4.0, "steps": 120, "tokens_seen": 48000, "train_time_s": 400.0, "views": ["titled"]}
    cfg = {
        "finetune": {
            "recipe": "aug",
            "page_part": "lead",
            "views": ["titled", "permuted"],
            "min_text_chars": 0,
        }
    }
    old = render_ft_arm({"config": cfg, "costs": {"finetune": ft}})
    assert old.startswith(  # 2 views x 1 chunk + the 8 augmented texts per pass
        "recipe `aug`, 4.0 passes over each trained page's lead (views titled, permuted, plus 8 rule-based "
        "restatements of its facts), 40 exposures of each page in all, 120 steps"
    )
    assert "120 steps, 48,000 tokens in 400 s" in old and "trained pages not recorded" in old
    cov = {"evaluated_pages": 8, "trained_pages": 6, "evaluated_questions": 20, "trained_questions": 15}
    cfg["finetune"]["min_text_chars"] = 200
    text = render_ft_arm({"config": cfg, "costs": {"finetune": {**ft, "coverage": cov}}})
    assert "texts under 200 characters dropped" in text
    assert text.endswith("it trained on 6 of 8 evaluated pages (75%), 15 of 20 questions.\n")
    assert render_ft_arm({"config": cfg, "costs": {}}) == "not trained in this run.\n"
