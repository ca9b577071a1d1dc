"""QLoRA throughput probe: tokens/s and peak VRAM for the default model or a random 7B-shaped Llama.

Run on a CUDA machine: ``python -m bench.training.gpu_probe --probe default`` and ``--probe 7b``. The 7B
shape is built on the meta device and quantised to nf4 one Linear layer at a time (no 13 GB checkpoint).
``--set device=cpu`` runs the same code slowly on a CPU (bitsandbytes 0.50 has CPU nf4 kernels).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bench.config import BenchError, Config
from bench.generation import models
from bench.io import peak_rss_mb
from bench.training.finetune import lora_targets
from bench.training.train_meta import versions as _versions

log = logging.getLogger(__name__)


def random_4bit_llama(config: Any, device: str) -> Any:
    """A random-weight Llama built on the meta device, its Linear layers quantised to nf4 one at a time.

    Peak host memory is one layer's weights, so a 7B shape fits anywhere the 4-bit model itself fits."""
    import bitsandbytes as bnb
    import torch
    from torch import nn
    from transformers import LlamaForCausalLM
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    gen = torch.Generator().manual_seed(0)
    for parent in list(model.modules()):
        for cname, child in list(parent.named_children()):
            if isinstance(child, nn.Linear) and cname != "lm_head":
                w = (
                    torch.randn(child.out_features, child.in_features, generator=gen, dtype=torch.bfloat16)
                    * 0.02
                )
                q = bnb.nn.Linear4bit(
                    child.in_features,
                    child.out_features,
                    bias=False,
                    compute_dtype=torch.bfloat16,
                    quant_type="nf4",
                    device="meta",
                )
                q.weight = bnb.nn.Params4bit(
                    w, requires_grad=False, quant_type="nf4", compress_statistics=True
                )
                setattr(parent, cname, q.to(device))
    for mod in list(model.modules()):
        for pname, p in list(mod.named_parameters(recurse=False)):
            if not p.is_meta:
                continue
            if "norm" in type(mod).__name__.lower():
                t = torch.ones(p.shape, dtype=torch.bfloat16)
            else:
                t = torch.randn(p.shape, generator=gen, dtype=torch.bfloat16) * 0.02
            setattr(mod, pname, nn.Parameter(t.to(device), requires_grad=False))
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.model.rotary_emb = LlamaRotaryEmbedding(config).to(device)
    model.is_loaded_in_4bit = True  # type: ignore[assignment]
    return model


def llama_7b_config() -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )


def _probe_model(cfg: Config, shape: str, model_config: Any) -> Any:
    """The 4-bit base model: the configured one ("default") or a random Llama of ``model_config``'s shape."""
    import dataclasses

    if shape == "default":
        model, _ = models.load_model(
            dataclasses.replace(cfg, device=cfg.device), for_training=True, quantization="nf4"
        )
        return model
    return random_4bit_llama(model_config or llama_7b_config(), cfg.device)


def _with_lora(model: Any, cfg: Config) -> tuple[Any, Any]:
    """(peft model, optimizer): LoRA on ``finetune.target_modules``; paged 8-bit AdamW on CUDA."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    ft, on_cuda = cfg.finetune, cfg.device == "cuda"
    model = prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=ft.gradient_checkpointing or on_cuda
    )
    targets = lora_targets(model, ft.target_modules)
    model = get_peft_model(
        model,
        LoraConfig(
            r=ft.lora_r,
            lora_alpha=ft.lora_alpha,
            target_modules=targets,
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
        ),
    )
    params = [p for p in model.parameters() if p.requires_grad]
    if on_cuda:
        import bitsandbytes as bnb

        opt: Any = bnb.optim.PagedAdamW8bit(params, lr=ft.learning_rate)
    else:
        opt = torch.optim.AdamW(params, lr=ft.learning_rate)
    return model, opt


def _timed_steps(model: Any, opt: Any, ids: Any, steps: int, on_cuda: bool) -> tuple[float, Any]:
    """(mean seconds per step after one warm-up step, the last loss)."""
    import torch

    times = []
    for _ in range(steps + 1):  # the first step is warm-up
        t = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if on_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return sum(times[1:]) / max(len(times) - 1, 1), loss


def qlora_probe(
    cfg: Config, shape: str = "default", steps: int = 5, model_config: Any = None
) -> dict[str, Any]:
    """QLoRA training throughput: tokens/s and peak VRAM for the configured model ("default") or a random
    7B-shaped Llama ("7b"; ``model_config`` overrides the shape). Batch and length from ``cfg.finetune``."""
    import torch

    ft, device = cfg.finetune, cfg.device
    on_cuda = device == "cuda"
    if on_cuda and not torch.cuda.is_available():
        raise BenchError("the QLoRA probe needs CUDA (or --set device=cpu for a slow check)")
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = _probe_model(cfg, shape, model_config)
    load_s = time.perf_counter() - t0
    model, opt = _with_lora(model, cfg)
    ids = torch.randint(0, model.config.vocab_size, (ft.batch_size, ft.max_length), device=device)
    step_s, loss = _timed_steps(model, opt, ids, steps, on_cuda)
    result = {
        "shape": shape,
        "device": device,
        "precision": "qlora: 4-bit nf4 base (double quant), bf16 compute",
        "batch_size": ft.batch_size,
        "seq_len": ft.max_length,
        "steps": steps,
        "load_s": round(load_s, 1),
        "s_per_step": round(step_s, 3),
        "tokens_per_s": round(ft.batch_size * ft.max_length / step_s, 1),
        "peak_vram_mb": round(torch.cuda.max_memory_allocated() / 2**20) if on_cuda else None,
        "peak_rss_mb": round(peak_rss_mb()),
        "final_loss": round(float(loss.detach()), 4),
        "gpu": torch.cuda.get_device_name() if on_cuda else None,
        "versions": _versions(),
    }
    log.info("QLoRA probe %s", result)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.training.gpu_probe --probe default|7b [--set ...]``: print the probe as JSON."""
    import argparse
    import json

    from bench.config import load_config

    p = argparse.ArgumentParser(prog="python -m bench.training.gpu_probe", description=qlora_probe.__doc__)
    p.add_argument("--probe", choices=["default", "7b"], required=True)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--config", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config, ["device=cuda", *args.overrides])
    print(json.dumps(qlora_probe(cfg, args.probe, args.steps), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
