"""bench.perf.opprofile: op families, the profiler's matmul FLOPs, and the block rendered from its JSON."""

from __future__ import annotations

from typing import Any

from bench.perf import opprofile
from bench.reporting.limits_tables import render_op_profile


def test_ops_fall_into_their_families() -> None:
    assert opprofile.family("aten::mm") == "matmul" and opprofile.family("aten::addmm") == "matmul"
    assert opprofile.family("aten::_scaled_dot_product_flash_attention_for_cpu") == "attention"
    assert opprofile.family("aten::_log_softmax_backward_data") == "lm-head softmax + loss"
    assert (
        opprofile.family("aten::_to_copy") == "dtype casts" and opprofile.family("aten::lerp_") == "optimizer"
    )
    assert opprofile.family("aten::fill_") == "fills" and opprofile.family("aten::gelu") == "other"


def test_a_real_profile_counts_matmul_time_and_flops() -> None:
    import torch

    a, b = torch.randn(256, 256), torch.randn(256, 256)

    def step() -> None:
        (a @ b).relu_().to(torch.bfloat16)

    out = opprofile._profile(step, steps=2, timed=2)
    fam = out["families"]
    assert set(fam) == {n for n, _ in opprofile.FAMILIES} | {"other"}
    assert abs(sum(f["share"] for f in fam.values()) - 1.0) < 0.01
    assert fam["matmul"]["share"] > 0 and fam["dtype casts"]["share"] > 0
    assert out["matmul_gflops_in_place"] is not None and out["matmul_gflops_in_place"] > 0.1
    assert len(out["step_s_all"]) == 2 and abs(out["step_s_mean"] - sum(out["step_s_all"]) / 2) < 2e-4


def test_render_names_machine_stage_and_shares() -> None:
    fams = {n: {"ms_per_step": 1.0, "share": 0.1} for n, _ in opprofile.FAMILIES}
    fams["other"] = {"ms_per_step": 5.0, "share": 0.5}
    stage: dict[str, Any] = {"families": fams, "step_s_mean": 0.42, "tokens_per_s": 121.4,
                             "matmul_gflops_in_place": 390.0, "setup": "tiny, batch 1"}  # fmt: skip
    doc = {"cpu_model": "AMD EPYC", "cpu_family": "family 26, model 2", "training": stage}
    text = render_op_profile([doc])
    row = "| AMD EPYC (family 26, model 2) | training (plain loop) | 420 ms, 121 tok/s | 10 % (390 GFLOP/s) |"
    assert row in text
    assert "| 50 % |" in text and "tiny, batch 1" in text and "embedding" not in text
    emb = {**stage, "attention_kernels_s": {"default": 7.75, "math": 14.22}, "setup": "e5, 128 chunks"}
    text = render_op_profile([{**doc, "embedding": emb}])
    assert "| embedding |" in text and "default attention kernel 7.75 s, with its math path 14.22 s" in text
    text = render_op_profile([{**doc, "trainer": {**stage, "setup": "trl's SFTTrainer"}}])
    assert text.index("| training (plain loop) |") < text.index("| training (the trainer) |")
    assert "training (the trainer): trl's SFTTrainer." in text


def test_trainer_profiles_whole_steps_of_the_real_trainer(monkeypatch: Any) -> None:
    """trainer(): one unprofiled run for the step time, then the profiler spans steps skip..skip+steps of
    a second run (each training_step call of trl's SFTTrainer), and the trainer is restored after."""
    import trl

    from bench.config import Config
    from bench.perf import stages

    original = trl.SFTTrainer.training_step
    seen: list[tuple[int, bool]] = []

    def fake_train_steps(cfg: Config, steps: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
        for _ in range(steps):
            trl.SFTTrainer.training_step(None)  # type: ignore[arg-type]
        return {"steps": steps, "s_per_step": 0.5, "tokens_per_s": 100.0, "tokens_seen": 60 * steps,
                "batch": "1 x ≤128 tokens", "precision": "bf16"}  # fmt: skip

    def fake_step(self: Any, *args: Any, **kwargs: Any) -> None:
        import torch

        seen.append((len(seen), torch._C._autograd._profiler_enabled()))
        torch.ones(64, 64) @ torch.ones(64, 64)

    monkeypatch.setattr(trl.SFTTrainer, "training_step", fake_step)
    monkeypatch.setattr(stages, "train_steps", fake_train_steps)
    out = opprofile.trainer(Config(), steps=3, skip=2)
    assert trl.SFTTrainer.training_step is fake_step and original is not fake_step
    profiled = [i for i, on in seen[10:] if on]  # the second run's calls: 0..5, profiled from its 3rd
    assert len(seen) == 10 + 6 and [i - 10 for i in profiled] == [2, 3, 4]
    assert out["tokens_per_step_mean"] == 60.0 and out["step_s_mean"] == 0.5
    assert out["families"]["matmul"]["share"] > 0
