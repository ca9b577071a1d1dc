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
    assert opprofile.family("aten::gelu") == "other"


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
    assert "| AMD EPYC (family 26, model 2) | training | 420 ms, 121 tok/s | 10 % (390 GFLOP/s) |" in text
    assert "| 50 % |" in text and "tiny, batch 1" in text and "embedding" not in text
    emb = {**stage, "attention_kernels_s": {"default": 7.75, "math": 14.22}, "setup": "e5, 128 chunks"}
    text = render_op_profile([{**doc, "embedding": emb}])
    assert "| embedding |" in text and "default attention kernel 7.75 s, with its math path 14.22 s" in text
