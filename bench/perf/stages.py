"""Short measurements of each `make bench` stage through the product's own code, on this machine: a few
training steps of the real model, an embedding pass over real chunks, and vLLM's prefill and decode.

Each returns its throughput and the model sizes its FLOP count needs (:mod:`bench.core.limits`); nothing
here is cached, and every artifact it writes (the short training's adapter) is removed again.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.config import Config
from bench.core.machine import tree_cpu_s

log = logging.getLogger(__name__)


def generator_shape(model_dir: Path) -> dict[str, Any]:
    """Parameters of the generator that do matmuls per token (every weight but the input embedding table),
    the input table, layers and attention width, from ``config.json`` and the safetensors headers."""
    from safetensors import safe_open

    conf = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    matmul, table = 0, 0
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():  # noqa: SIM118 (safe_open has no __iter__)
                n = 1
                for d in st.get_slice(name).get_shape():
                    n *= int(d)
                table, matmul = (table + n, matmul) if "embed_tokens" in name else (table, matmul + n)
    if conf.get("tie_word_embeddings"):
        matmul += table  # the LM head is the embedding table, used as a matmul on every token
    head_dim = conf.get("head_dim") or conf["hidden_size"] // conf["num_attention_heads"]
    return {
        "matmul_params": matmul,
        "embedding_table_params": table,
        "n_layer": int(conf["num_hidden_layers"]),
        "d_attn": int(conf["num_attention_heads"] * head_dim),
        "tied_lm_head": bool(conf.get("tie_word_embeddings")),
    }


def train_steps(cfg: Config, steps: int, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """``steps`` optimizer steps of the default recipe through :func:`bench.training.finetune.run_finetune`
    (probe off; ``extra`` settings on top), the adapter removed afterwards: tokens/s (non-padding tokens),
    s/step, the loss curve, LoRA parameters."""
    from bench.config import load_config
    from bench.training import finetune

    sets = [
        *extra,
        "finetune.epochs=0",
        f"finetune.max_steps={steps}",
        "finetune.probe=false",
        f"finetune.save_steps={steps * 10}",
        "finetune.logging_steps=1",
        f"results_dir={cfg.results_dir}",
    ]
    short = load_config(None, sets)
    out = finetune.adapter_dir(short)
    shutil.rmtree(out, ignore_errors=True)  # a fresh training, never a reused adapter
    try:
        finetune.run_finetune(short)
        meta = json.loads((out / finetune.METADATA).read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {
        "steps": meta["steps"],
        "tokens_per_s": meta["tokens_per_s"],
        "s_per_step": meta["s_per_step"],
        "tokens_seen": meta["tokens_seen"],
        "loss_curve": [p["loss"] for p in meta["loss_curve"]],
        "trainable_params": meta["trainable_params"],
        "batch": f"{short.finetune.batch_size} x ≤{short.finetune.max_length} tokens",
        "max_length": short.finetune.max_length,
        "precision": meta["precision"],
        "threads": meta["threads"],
    }


def train_steps_child(
    cfg: Config, steps: int, extra: tuple[str, ...], env: tuple[str, ...], timeout_s: float = 3600.0
) -> dict[str, Any]:
    """:func:`train_steps` in a process of its own with ``env`` (``NAME=VALUE`` items) added to this one's
    environment: for what a process reads once, such as torch's ``THP_MEM_ALLOC_ENABLE``."""
    extra_env = dict(item.split("=", 1) for item in env)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "steps.json"
        sets = [x for s in (f"results_dir={cfg.results_dir}", *extra) for x in ("--set", s)]
        cmd = [sys.executable, "-m", "bench.perf", "train-steps", "--train-steps", str(steps), *sets]
        subprocess.run([*cmd, "-o", str(out)], env={**os.environ, **extra_env}, check=True, timeout=timeout_s)
        return dict(json.loads(out.read_text(encoding="utf-8")))


def corpus_chunks(cfg: Config, n: int) -> list[str]:
    """The first ``n`` chunks of the profile's corpus, as the index embeds them."""
    from bench.ingest.corpus import iter_corpus
    from bench.retrieval.chunking import Chunker

    ic, texts = cfg.index, []
    for c in Chunker(ic.chunk_tokens, ic.chunk_overlap).iter_chunks(iter_corpus(cfg.corpus_paths())):
        texts.append(c.embed_text())
        if len(texts) == n:
            break
    return texts


def embed_pass(cfg: Config, n_chunks: int) -> dict[str, Any]:
    """The profile's embedder over ``n_chunks`` corpus chunks (after a warm-up): chunks/s, tokens/s, and the
    encoder's matmul parameters (all but its embedding tables), layers and width."""
    from bench.retrieval.embedders import make_embedder

    emb: Any = make_embedder(cfg)
    texts = corpus_chunks(cfg, n_chunks)
    emb.embed_passages(texts[:8])  # first-call allocations, kernel selection
    t0 = time.perf_counter()
    emb.embed_passages(texts)
    secs = time.perf_counter() - t0
    tokens = sum(emb.token_count(t) for t in texts)
    out: dict[str, Any] = {
        "embedder": getattr(emb, "name", cfg.index.embedder),
        "chunks": len(texts),
        "tokens": tokens,
        "seconds": round(secs, 3),
        "chunks_per_s": round(len(texts) / secs, 2),
        "tokens_per_s": round(tokens / secs, 1),
        "mean_tokens": round(tokens / max(1, len(texts)), 1),
    }
    model = getattr(emb, "_model", None)  # e5-torch: an XLMRobertaModel
    if model is not None:
        out["matmul_params"] = sum(p.numel() for n, p in model.named_parameters() if "embeddings." not in n)
        out["n_layer"] = int(model.config.num_hidden_layers)
        out["d_attn"] = int(model.config.hidden_size)
        keys = ("model_type", "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers")
        out["model_config"] = {k: getattr(model.config, k) for k in keys}
        out["batch_size"] = cfg.index.embed_batch_size
    return out


def _complete(client: Any, url: str, model: str, prompt: list[int], max_tokens: int) -> tuple[float, int]:
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "ignore_eos": True,
        "min_tokens": max_tokens,
    }
    t0 = time.perf_counter()
    r = client.post(url, json=body)
    r.raise_for_status()
    return time.perf_counter() - t0, int(r.json()["usage"]["completion_tokens"])


def _prompt(rng: random.Random, n: int) -> list[int]:
    """``n`` random token ids: no two prompts share a prefix, so prefix caching cannot skip any prefill."""
    return [rng.randrange(1000, 100_000) for _ in range(n)]


def vllm_generation(
    cfg: Config, prompt_tokens: int = 768, decode_tokens: int = 64, reps: int = 3, batch: int = 4
) -> dict[str, Any]:
    """vLLM's engine (the `make bench` backend), started as `bench run` starts it: prefill tokens/s (a
    ``prompt_tokens`` prompt, 1 new token, minus a 1-token request's time) and decode steps/s
    (``decode_tokens`` new tokens minus 1, at batch 1 and at ``batch`` concurrent sequences); best of
    ``reps`` each."""
    import httpx

    from bench.generation import models
    from bench.generation.vllm_engine import EngineSpec, VllmServer

    base_dir = models.ensure_hf_model(cfg)
    server = VllmServer(cfg, EngineSpec(base_dir, cfg.model.name), cfg.results_path / "vllm")
    rng = random.Random(cfg.seed)
    start_s = server.start()
    try:
        url, name = server.base_url + "/completions", cfg.model.name
        with httpx.Client(timeout=httpx.Timeout(300.0)) as client:
            _complete(client, url, name, _prompt(rng, 32), 2)  # warm-up
            tiny = min(_complete(client, url, name, _prompt(rng, 1), 1)[0] for _ in range(reps))
            long = min(_complete(client, url, name, _prompt(rng, prompt_tokens), 1)[0] for _ in range(reps))
            one = min(_complete(client, url, name, _prompt(rng, 16), 1)[0] for _ in range(reps))
            many = min(_complete(client, url, name, _prompt(rng, 16), decode_tokens)[0] for _ in range(reps))

            def batch_decode() -> float:
                prompts = [_prompt(rng, 16) for _ in range(batch)]
                t0 = time.perf_counter()
                with ThreadPoolExecutor(batch) as pool:
                    list(pool.map(lambda p: _complete(client, url, name, p, decode_tokens), prompts))
                return time.perf_counter() - t0

            batched = min(batch_decode() for _ in range(reps))
        engine_cpu = tree_cpu_s(server.proc.pid) if server.proc is not None else 0.0
    finally:
        server.stop()
    steps = decode_tokens - 1
    return {
        "engine": "vllm",
        "engine_start_s": round(start_s, 1),
        "prompt_tokens": prompt_tokens,
        "prefill_s": round(long - tiny, 4),
        "prefill_tokens_per_s": round(prompt_tokens / max(long - tiny, 1e-9), 1),
        "decode_tokens": decode_tokens,
        "decode_steps_per_s": round(steps / max(many - one, 1e-9), 2),
        "batch": batch,
        "batch_decode_tokens_per_s": round(batch * decode_tokens / batched, 1),
        "batch_decode_steps_per_s_est": round(decode_tokens / batched, 2),
        "request_overhead_s": round(tiny, 4),
        "engine_cpu_s": round(engine_cpu, 1),  # the server's process group: this measurement's own CPU
    }
