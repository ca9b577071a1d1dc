"""Issue 35: the limits microbenchmark, the FLOP counts, the time-breakdown counts and their renderers; the
answer probe's shared-prefix cache against scoring each question on its own."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.core import limits
from bench.perf import breakdown
from bench.reporting import limits_tables, readme

pytestmark = pytest.mark.timeout(120)


def test_cpu_slug_and_flags(tmp_path: Path) -> None:
    assert limits.cpu_slug("AMD EPYC") == "amd-epyc"
    assert limits.cpu_slug("Intel(R) Xeon(R) Processor") == "intel-xeon-processor"
    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: X\nflags\t\t: fpu avx2 avx512f avx512_bf16\n", encoding="utf-8")
    flags = limits.cpu_flags(info)
    assert flags["avx512_bf16"] and flags["avx2"] and not flags["amx_bf16"]


def test_small_peaks_are_positive() -> None:
    mm = limits.best_matmul_peak("float32", sizes=(64, 128), reps=2)
    assert mm["gflops"] > 0 and set(mm["by_size"]) == {"64", "128"}
    assert mm["gflops"] == max(mm["by_size"].values())
    bw = limits.bandwidth(mib=8, reps=2)
    assert bw["copy_gbs"] > 0 and bw["gbs"] == max(bw["copy_gbs"], bw["read_gbs"])


def test_flop_counts_and_fractions() -> None:
    n = 494e6
    assert limits.forward_flops(n) == 2 * n
    # LoRA: forward 2N + activation gradients 2N (no weight gradients of the frozen base) + 6 N_lora
    assert limits.lora_train_flops(n, 8.8e6) == 4 * n + 6 * 8.8e6
    assert limits.lora_train_flops(n, 0, n_layer=24, ctx=64, d_attn=896) == 4 * n + 3 * 2 * 24 * 64 * 896
    m = limits.mfu(100.0, 2e9, 400.0)
    assert m["achieved_gflops"] == 200.0 and m["fraction"] == 0.5
    assert limits.mfu(None, 2e9, 400.0)["fraction"] is None
    d = limits.decode_bandwidth_use(10.0, 1e9, 20.0)
    assert d["achieved_gbs"] == 10.0 and d["fraction"] == 0.5


def test_padding_counts() -> None:
    lengths = [10, 100, 10, 100, 10, 100, 10, 100]
    assert breakdown.padded_tokens(lengths, 2) == 8 * 100  # every pair padded to 100
    assert breakdown.grouped_padded_tokens(lengths, 2, window=8) == 4 * 10 + 4 * 100
    rep = breakdown.padding_report(lengths, batch=2, max_length=100)
    assert rep["real_tokens"] == 440 and rep["pad_fraction"]["sequential"] == round(1 - 440 / 800, 4)
    assert rep["pad_fraction"]["grouped_64"] == 0.0 and rep["at_max_length"] == 4


def test_common_prefix() -> None:
    from bench.training import injection

    assert injection.common_prefix([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert injection.common_prefix([[1, 2], [1, 2]]) == 2
    assert injection.common_prefix([]) == 0


def test_shared_prefix_probe_equals_one_by_one(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.training import injection

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    shared = "Responda com um trecho do contexto. " * 6
    items: list[dict[str, Any]] = [
        {"id": i, "prompt": shared + q, "answer": a}
        for i, (q, a) in enumerate(
            [("Quem fundou Lisboa?", "os fenícios"), ("Em que ano?", "1147"), ("Onde?", "Porto")]
        )
    ]
    fast = injection.answer_probe(model, tok, items)
    slow = {
        str(it["id"]): round(injection.answer_nll(model, tok, it["prompt"], it["answer"]), 4) for it in items
    }
    assert set(fast) == set(slow)
    assert all(abs(fast[k] - slow[k]) < 2e-3 for k in slow), (fast, slow)
    assert len(set(fast.values())) > 1  # the questions differ: not one number repeated


def _limits_doc(cpu: str, others: float) -> dict[str, Any]:
    frac = {"fraction": 0.5, "achieved_gflops": 100.0}
    return {
        "cpu_model": cpu,
        "cores": 2,
        "peaks": {
            "matmul": {"bfloat16": {"gflops": 200.0}, "float32": {"gflops": 80.0}},
            "bandwidth": {"gbs": 20.0},
        },
        "fractions": {
            "training": frac,
            "embedding": frac,
            "prefill": frac,
            "decode": {"fraction": 0.25, "achieved_gbs": 5.0},
        },
        "stages": {
            "training": {"tokens_per_s": 50.0, "steps": 8, "batch": "4 x ≤128 tokens", "s_per_step": 9.0}
        },
        "formulas": {"training": "4 N"},
        "machine": {
            "cpu_model": cpu,
            "cores": 2,
            "wall_s": 100.0,
            "others_cpu_s": others,
            "niced_cpu_s": 0.0,
            "others_counts_niced": True,
            "load_average_start": [0.1, 0, 0],
            "load_average_end": [2.0, 0, 0],
        },
    }


def test_limits_table_one_row_per_machine_and_contention() -> None:
    body = limits_tables.render_limits([_limits_doc("AMD EPYC", 1.0), _limits_doc("Intel Xeon", 60.0)])
    rows = [ln for ln in body.splitlines() if ln.startswith("| AMD") or ln.startswith("| Intel")]
    assert len(rows) == 2
    assert "200 / 80" in rows[0] and "50 % (100 GFLOP/s)" in rows[0] and "25 % (5 GB/s)" in rows[0]
    assert "contended" not in rows[0] and "*contended*" in rows[1]
    details = limits_tables.render_limits_details([_limits_doc("AMD EPYC", 1.0)])
    assert "Not this CPU's fractions" not in details
    assert "Not this CPU's fractions" in limits_tables.render_limits_details([_limits_doc("X", 60.0)])
    assert "training 50.0 tokens/s (8 steps" in details and "- training: 4 N." in details


def test_limits_block_is_rendered_from_the_perf_dir(tmp_path: Path) -> None:
    import json

    (tmp_path / "limits-amd-epyc.json").write_text(json.dumps(_limits_doc("AMD EPYC", 1.0)), encoding="utf-8")
    found = dict((n, b) for n, _, b in readme.perf_bodies(["limits", "limits-details"], tmp_path))
    assert "| AMD EPYC, 2 cores |" in found["limits"] and "- training: 4 N." in found["limits-details"]


def test_time_breakdown_renders_its_figures() -> None:
    doc = {
        "run": "results/runs/default",
        "stages": {
            "cpu_model": "X",
            "total_s": 1000,
            "stages_s": {"ingest": 1, "index": 50},
            "finetune": {"wall_s": 700, "train_s": 500, "steps": 100},
            "run": {"wall_s": 249, "generation_s": 150.0, "retrieval_s": 9.0, "unaccounted_s": 90.0},
        },
        "padding": {
            "records": 8,
            "batch": 4,
            "max_length": 128,
            "mean_length": 90.0,
            "pad_fraction": {"sequential": 0.19, "grouped_64": 0.03, "packed": 0.0},
        },
        "prompts": {
            "rag": {
                "total": 834,
                "examples": 341,
                "passages": 387,
                "instruction_and_question": 107,
                "shared_prefix": 433,
            }
        },
    }
    body = limits_tables.render_time_breakdown(doc)
    assert "| finetune | 700 | training steps (100) | 500 | 200 |" in body
    assert "| run | 249 | generation + retrieval of every variant | 159 | 90 |" in body
    assert "19 % of the computed token slots" in body and "| rag | 834 | 341 | 387 | 107 | 433 |" in body


def test_base_probe_is_computed_once_per_base_model_and_questions(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    from bench.config import load_config
    from bench.training import probe_cache

    cfg = load_config("smoke", [f"results_dir={tmp_path}", f"model.name={tiny_model_dir}"])
    calls: list[int] = []
    texts = {"trained": "texto", "heldout": "outro"}

    def probe() -> dict[str, Any]:
        calls.append(1)
        return {"answers": {"q1": float(len(calls))}}

    def key(question: str) -> str:
        return probe_cache.probe_key(cfg, False, texts, [{"id": "q1", "prompt": question, "answer": "1945"}])

    first = probe_cache.cached_probe(cfg, key("Em que ano?"), probe)
    # another adapter, same base model and questions: read back
    assert probe_cache.cached_probe(cfg, key("Em que ano?"), probe) == first and len(calls) == 1
    # other questions: computed again
    assert probe_cache.cached_probe(cfg, key("Onde nasceu?"), probe) != first and len(calls) == 2
    assert probe_cache.probe_key(cfg, True, texts, []) != probe_cache.probe_key(cfg, False, texts, [])
    assert len(list((tmp_path / probe_cache.DIR).glob("*.json"))) == 2


def test_train_ab_renders_speedup_and_loss_gap() -> None:
    doc = {
        "steps": 16,
        "order": "before, after, after, before; the best tokens/s of each counts",
        "settings": {"before": ["finetune.length_window=0"], "after": ["(default profile)"]},
        "tokens_per_s": {"before": 90.0, "after": 110.0},
        "s_per_step": {"before": 4.4, "after": 3.6},
        "mean_loss": {"before": 2.9, "after": 2.91},
        "speedup": 1.222,
        "mean_loss_rel_gap": 0.0034,
    }
    body = limits_tables.render_train_ab(doc)
    assert "| before | `finetune.length_window=0` | 16 | – | 90.0 | 4.40 | 2.9000 |" in body
    assert "**1.22×** tokens/s" in body and "differ by 0.34 %" in body
    batch = {"before": "1 x ≤128", "after": "4 x ≤128"}
    batched = {**doc, "steps": {"before": 32, "after": 8}, "batch": batch}
    assert "| after | `(default profile)` | 8 | 4 x ≤128 | 110.0 |" in limits_tables.render_train_ab(batched)


def test_train_ab_runs_the_after_settings_for_their_own_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A larger batch is compared over the same records: --after-steps = steps x batch before / batch."""
    from bench.config import Config
    from bench.perf import report

    calls: list[tuple[int, tuple[str, ...]]] = []

    def fake(cfg: Config, steps: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
        calls.append((steps, extra))
        rate = 100.0 if extra else 60.0
        return {"tokens_per_s": rate, "s_per_step": 1.0, "tokens_seen": 10, "loss_curve": [2.0, 3.0],
                "batch": "4 x ≤128" if extra else "1 x ≤128"}  # fmt: skip

    monkeypatch.setattr(report.stages, "train_steps", fake)
    doc = report.train_ab(Config(), 32, (), ("finetune.batch_size=4",), after_steps=8)
    assert sorted(calls) == [(8, ("finetune.batch_size=4",))] * 2 + [(32, ())] * 2
    assert doc["steps"] == {"before": 32, "after": 8} and doc["speedup"] == round(100 / 60, 3)
    assert doc["batch"] == {"before": "1 x ≤128", "after": "4 x ≤128"}


def test_train_ab_with_env_runs_every_run_in_its_own_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--before-env/--after-env: both sides in child processes (``train-steps``), each with its variables;
    the settings column shows them."""
    import subprocess

    from bench.config import Config
    from bench.perf import report

    seen: list[tuple[list[str], str | None]] = []

    def fake_run(cmd: list[str], env: dict[str, str], check: bool, timeout: float) -> None:
        assert check and timeout > 0 and cmd[1:4] == ["-m", "bench.perf", "train-steps"]
        seen.append((cmd, env.get("THP_MEM_ALLOC_ENABLE")))
        rate = 80.0 if env.get("THP_MEM_ALLOC_ENABLE") == "0" else 88.0
        out = Path(cmd[cmd.index("-o") + 1])
        out.write_text(json.dumps({"tokens_per_s": rate, "s_per_step": 0.5, "tokens_seen": 10,
                                   "loss_curve": [2.0], "batch": "1 x ≤128"}), encoding="utf-8")  # fmt: skip

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(report.stages, "train_steps", lambda *a, **k: pytest.fail("ran in this process"))
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    cfg = Config(results_dir=str(tmp_path))
    doc = report.train_ab(cfg, 4, (), (), env={"before": ("THP_MEM_ALLOC_ENABLE=0",)})
    assert [thp for _, thp in seen] == ["0", None, None, "0"]  # before, after, after, before
    assert all(f"results_dir={tmp_path}" in cmd and "4" in cmd for cmd, _ in seen)
    assert doc["speedup"] == 1.1 and doc["processes"] == "one per run"
    body = limits_tables.render_train_ab(doc)
    assert "| before | `(default profile)` `THP_MEM_ALLOC_ENABLE=0` | 4 |" in body
    assert "each run in a process of its own" in body
    assert "Every run's tokens/s: before 80.0, 80.0; after 88.0, 88.0." in body


def test_prefill_floor_counts_only_the_tokens_past_the_shared_prefix() -> None:
    """The run stage's floor (bench.perf.breakdown.prefill_floor): each variant's questions x (prompt -
    shared prefix) tokens at the measured prefill rate, rendered under the breakdown with its CPU."""
    from bench.perf.breakdown import prefill_floor

    prompts = {
        "rag": {"total": 834.0, "shared_prefix": 434.0},
        "base": {"total": 198.0, "shared_prefix": 182.0},
    }
    variants = {"rag": {"n": 200}, "base": {"n": 200}}
    lim = {"cpu_model": "AMD EPYC", "stages": {"generation": {"prefill_tokens_per_s": 500.0}},
           "fractions": {"prefill": {"fraction": 0.91}}}  # fmt: skip
    floor = prefill_floor(prompts, variants, lim)
    assert floor is not None
    assert floor["variants"]["rag"] == {"questions": 200, "tokens": 80000, "seconds": 160.0}
    assert floor["variants"]["base"]["tokens"] == 3200 and floor["total_s"] == 166.4
    assert prefill_floor(prompts, variants, {"stages": {}}) is None  # no measured rate: no floor
    doc = {"run": "r", "stages": {"stages_s": {"run": 700}}, "prefill_floor": floor}
    body = limits_tables.render_time_breakdown(doc)
    assert "AMD EPYC's measured prefill rate (500 tokens/s, 91 %" in body
    assert "rag 160 s" in body and "166 s of the run stage's 700 s" in body


def test_shape_peak_weighs_each_product_by_its_flops() -> None:
    """bench.core.gemm_shapes: a decoder step's products (q/k/v/o, gated MLP, LM head, their transposes for
    the backward pass), each timed once per shape, combined as total FLOPs over total time."""
    from bench.core import gemm_shapes

    conf = {"hidden_size": 8, "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 16,
            "num_hidden_layers": 3, "vocab_size": 32, "model_type": "qwen2"}  # fmt: skip
    fwd = gemm_shapes.layer_gemms(conf, 5)
    assert fwd == [(5, 8, 8, 3), (5, 8, 4, 3), (5, 8, 4, 3), (5, 8, 8, 3), (5, 8, 16, 3), (5, 8, 16, 3),
                   (5, 16, 8, 3)]  # fmt: skip
    train = gemm_shapes.layer_gemms(conf, 5, lm_head=True, backward=True)
    assert (5, 8, 32, 1) in train and (5, 32, 8, 1) in train and len(train) == 2 * (len(fwd) + 1)
    encoder = gemm_shapes.layer_gemms({**conf, "model_type": "xlm-roberta", "num_key_value_heads": None}, 5)
    assert encoder[-2:] == [(5, 8, 16, 3), (5, 16, 8, 3)] and encoder[1] == (5, 8, 8, 3)
    calls: list[tuple[int, int, int]] = []

    def rate(m: int, k: int, n: int, dtype: str, reps: int) -> float:
        calls.append((m, k, n))
        return 100.0 if n == 16 else 50.0  # GFLOP/s

    got = gemm_shapes.shape_peak([(5, 8, 16, 2), (5, 8, 8, 1), (5, 8, 16, 1)], rate=rate)
    assert calls == [(5, 8, 16), (5, 8, 8)]  # each shape timed once
    flops = 2 * 5 * 8 * (16 * 3 + 8)
    seconds = 2 * 5 * 8 * 16 * 3 / 100e9 + 2 * 5 * 8 * 8 / 50e9
    assert got["gflops"] == round(flops / seconds / 1e9, 1) and got["by_shape"] == {
        "5x8x16": 100.0,
        "5x8x8": 50.0,
    }
    assert 50.0 < got["gflops"] < 100.0
    assert gemm_shapes.gemm_gflops(16, 16, 16, "float32", reps=1) > 0  # the real timer runs


def test_a_stage_is_also_held_against_its_shape_peak() -> None:
    from bench.perf.report import fractions

    peaks = {"matmul": {"bfloat16": {"gflops": 400.0}}, "bandwidth": {"gbs": 30.0}}
    st = {"shape": {"matmul_params": 1e8, "n_layer": 2, "d_attn": 64},
          "training": {"max_length": 128, "trainable_params": 1e6, "tokens_per_s": 500.0},
          "shape_peaks": {"training": {"gflops": 250.0, "tokens_per_step": 70}}}  # fmt: skip
    tr = fractions(peaks, st)["training"]
    assert abs(tr["fraction"] - tr["achieved_gflops"] / 400.0) < 1e-3
    assert tr["shape_peak_gflops"] == 250.0
    assert abs(tr["fraction_of_shape_peak"] - tr["achieved_gflops"] / 250.0) < 1e-3
    cell = limits_tables.render_limits(
        [{"cpu_model": "X", "cores": 2, "peaks": peaks, "fractions": {"training": tr}}]
    )
    assert f"{100 * tr['fraction_of_shape_peak']:.0f} % of its shape peak" in cell


def test_cpu_family_names_the_microarchitecture(tmp_path: Path) -> None:
    """One limits file per microarchitecture: VMs call Zen 4 and Zen 5 both "AMD EPYC"."""
    from bench.core.limits import cpu_family

    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n", encoding="utf-8"
    )
    assert cpu_family(info) == "family 26, model 2"
    info.write_text("model name\t: AMD EPYC\n", encoding="utf-8")
    assert cpu_family(info) == "" and cpu_family(tmp_path / "missing") == ""
    row = limits_tables.render_limits(
        [{"cpu_model": "AMD EPYC", "cpu_family": "family 26, model 2", "cores": 2}]
    )
    assert "| AMD EPYC (family 26, model 2), 2 cores |" in row


def test_batched_page_probe_equals_piece_by_piece(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page probe runs pieces of similar length together, right-padded: each piece's NLL must be what it
    is alone (the reference: one forward per piece with the model's own loss)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.training import injection

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    texts = [("Lisboa é a capital de Portugal. " * n).strip() for n in (1, 2, 5, 9, 3)]
    block = 16
    total, count = 0.0, 0
    with torch.no_grad():
        for t in texts:
            ids = tok(t, add_special_tokens=False)["input_ids"]
            for i in range(0, len(ids), block):
                piece = ids[i : i + block]
                if len(piece) >= 2:
                    x = torch.tensor([piece])
                    total += float(model(input_ids=x, labels=x).loss) * (len(piece) - 1)
                    count += len(piece) - 1
    monkeypatch.setattr(injection, "PROBE_BATCH_TOKENS", 48)  # several batches, each with padding
    got = injection.mean_nll(model, tok, texts, block)
    assert got["tokens"] == count
    assert abs(got["nll"] - round(total / count, 4)) < 2e-4, (got, total / count)


def test_batched_answer_probe_with_uneven_batches(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.training import injection

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    model.train()
    shared = "Responda com um trecho do contexto. " * 6
    qa = [("Quem?", "os fenícios de Tiro"), ("Em que ano foi?", "1147"), ("Onde fica a cidade?", "Porto"),
          ("Qual?", ""), ("Quando nasceu o rei?", "em 1143, em Guimarães")]  # fmt: skip
    items: list[dict[str, Any]] = [
        {"id": i, "prompt": shared + q, "answer": a} for i, (q, a) in enumerate(qa)
    ]
    monkeypatch.setattr(injection, "PROBE_BATCH_TOKENS", 20)  # batches of 1-3 questions
    fast = injection.answer_probe(model, tok, items)
    assert list(fast) == [str(i) for i in range(len(qa))]  # the items' order
    assert math.isnan(fast["3"])  # an empty answer has no NLL
    for it in items[:3] + items[4:]:
        slow = injection.answer_nll(model, tok, it["prompt"], it["answer"])
        assert abs(fast[str(it["id"])] - slow) < 2e-3, (it, fast, slow)
    assert model.training  # the probe restores training mode


def test_batched_variants_count_their_wall_not_the_sum_of_overlapping_requests() -> None:
    v: dict[str, Any] = {"n": 200, "generation_s": 12000.0, "retrieval_s": 3.0, "new_tokens": 900}
    summary = {"throughput": {"questions_per_s": 2.0, "n": 200, "batch": 200},
               "single_latency_ms": {"n": 20, "p50": 500.0, "p95": 900.0}}  # fmt: skip
    breakdown._batched_wall(v, summary)
    assert v["batch_wall_s"] == 100.0 and v["latency_probe_s"] == 10.0 and v["generation_s"] == 110.0
    assert v["summed_generation_s"] == 12000.0
    one = {"n": 5, "generation_s": 4.0, "retrieval_s": 0.0, "new_tokens": 9}
    breakdown._batched_wall(one, {"throughput": {"questions_per_s": 1.0, "n": 5, "batch": 1}})
    assert one == {"n": 5, "generation_s": 4.0, "retrieval_s": 0.0, "new_tokens": 9}  # one at a time: the sum


def test_the_bandwidth_peak_is_the_best_of_the_measurements_around_the_stages() -> None:
    from bench.perf.report import _best_bandwidth

    before = {"buffer_mib": 512, "copy_gbs": 45.5, "read_gbs": 45.2, "gbs": 45.5}
    after = {"buffer_mib": 256, "copy_gbs": 65.5, "read_gbs": 70.7, "gbs": 70.7}
    best = _best_bandwidth(before, after)
    assert best["gbs"] == 70.7 and best["buffer_mib"] == 256
    assert best["gbs_before_stages"] == 45.5 and best["gbs_after_stages"] == 70.7
    assert _best_bandwidth(after, before)["gbs"] == 70.7
