"""The artifact graph: every cached artifact lives at ``results/<stage>/<key>``, and the key is the hash of
the stage's own inputs *and its upstream keys*, so a change anywhere upstream re-runs everything below it.

    articles  = key(corpus file contents, ingest.limit, cleaner code)
    index     = key(articles, chunking, embedder + its weights, chunker/BM25 code, dense or sparse-only)
    adapter   = key(articles or question files, [finetune], device, model weights, training code)
    answers   = key(variant, prompt, [model], device, seed, index key, adapter key)   (bench.eval.runstate)

Code versions are hashes of the source files that shape an artifact (read as text, never imported, so this
module sits below every stage without an import cycle) — nothing is bumped by hand.
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import recipe_keys
from bench.config import Config, stable_hash
from bench.io import code_version

log = logging.getLogger(__name__)

# Source files whose text shapes each artifact (paths under bench/).
CLEANER_CODE = (
    "ingest/dump.py", "ingest/articles.py", "ingest/wikitext.py", "ingest/wikitext_fast.py",
    "ingest/corpus.py", "ingest/multistream.py",
)  # fmt: skip
CHUNKER_CODE = ("retrieval/chunking.py", "retrieval/bm25.py")  # chunk boundaries, BM25 term weights
EMBEDDER_CODE = (  # what turns a chunk into its dense vector (and converts e5's weights)
    "retrieval/embedders.py", "retrieval/e5_torch.py", "retrieval/e5_convert.py", "retrieval/e5_tokenizer.py",
    "retrieval/spm_charsmap.py",
)  # fmt: skip
SEARCH_CODE = ("retrieval/index.py", "retrieval/store.py", "retrieval/store_server.py")  # query time only
TRAINING_CODE = (
    "training/sft_data.py", "training/sft_qa.py", "training/sft_views.py", "training/finetune.py",
    "questions/leakage.py", "core/prompts.py", "generation/base.py", "training/recipes.py",
    "training/sft_recipes.py", "training/repro.py", "recipe_keys.py", "training/snapshots.py",
    "training/augment.py", "training/augment_rules.py",
    "generation/models.py",  # how the base model is loaded for training: dtype, nf4
    "training/batching.py",  # the record order of length_window
)  # fmt: skip


@dataclass(frozen=True)
class Artifact:
    """One node of the graph: where it lives and what named it (recorded beside the artifact)."""

    stage: str
    key: str
    inputs: dict[str, Any]
    path: Path


def node(cfg: Config, stage: str, inputs: dict[str, Any], suffix: str = "") -> Artifact:
    """The only way to name a cache location: ``results/<stage>/<hash(stage, inputs)><suffix>``."""
    key = stable_hash({"stage": stage, **inputs})
    return Artifact(stage, key, inputs, cfg.results_path / stage / f"{key}{suffix}")


def file_sha256(cfg: Config, path: Path, what: str) -> str:
    """Content hash of an input file (cached by size + mtime); a missing one is a clear error."""
    from bench.config import BenchError
    from bench.weights import cached_sha256

    if not path.is_file():
        raise BenchError(f"{what} file not found: {path}")
    return cached_sha256(cfg, path)


def corpus_identity(cfg: Config) -> list[dict[str, str]]:
    """The corpus files with their content sha256 (cached by size + mtime); a missing file is an error."""
    from bench.config import BenchError
    from bench.weights import cached_sha256

    files = []
    for p in cfg.corpus_paths():
        if not p.is_file():
            raise BenchError(f"corpus file not found: {p} (corpus = {cfg.corpus!r})")
        files.append({"path": str(p), "sha256": cached_sha256(cfg, p)})
    return files


def articles(cfg: Config) -> Artifact:
    """The cleaned articles of the whole corpus (all files, ``ingest.limit`` applied): one JSONL file that
    index and fine-tune both read, so RAG and FT always see the same articles."""
    inputs = {
        "corpus": [f["sha256"] for f in corpus_identity(cfg)],
        "limit": cfg.ingest.limit,
        "cleaner": code_version(*CLEANER_CODE),
    }
    return node(cfg, "articles", inputs, ".jsonl")


def index(cfg: Config) -> Artifact:
    ic = cfg.index
    inputs = {
        "articles": articles(cfg).key,
        "chunking": {"chunk_tokens": ic.chunk_tokens, "chunk_overlap": ic.chunk_overlap},
        "embedder": {**embedder_identity(cfg), "code": code_version(*EMBEDDER_CODE)}
        if dense_enabled(cfg)
        else None,
        "storage": {"int8": ic.dense_int8, "on_disk": ic.dense_on_disk},
        "code": code_version(*CHUNKER_CODE),
    }
    return node(cfg, "index", inputs)


def embedder_identity(cfg: Config) -> dict[str, str | None]:
    """What names the embedder in the index key: backend, model, and the version of the package that
    ships its weights (an HF id or local path for sentence-transformers names itself)."""
    from bench.config import BenchError
    from bench.config_checks import registry_names
    from bench.weights import EMBEDDER_WEIGHTS, MINILM_ALIASES

    ic = cfg.index
    if ic.embedder not in (names := registry_names("index.embedder")):
        raise BenchError(f"unknown index.embedder {ic.embedder!r}; use one of {', '.join(names)}")
    dist = EMBEDDER_WEIGHTS.get(ic.embedder)
    if ic.embedder in {"sentence-transformers", "st"} and ic.embedder_model not in MINILM_ALIASES:
        dist = None
    try:
        version = importlib.metadata.version(dist) if dist else None
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {
        "embedder": ic.embedder,
        "model": ic.embedder_model,
        "weights": f"{dist}=={version}" if dist else None,
    }


def dense_enabled(cfg: Config) -> bool:
    """``index.retrieval = "sparse"`` builds a BM25-only index: no chunk is embedded (hours saved on a big
    corpus); dense or hybrid retrieval then needs an index built with dense vectors."""
    return cfg.index.retrieval != "sparse"


def model_identity(cfg: Config) -> dict[str, Any]:
    """The generator weights: file hashes for local weights, the id for a hub model."""
    from bench.model_registry import resolve_model

    spec = resolve_model(cfg)
    if spec.gguf_path is not None:
        return {"gguf_sha256": file_sha256(cfg, spec.gguf_path, "model weights")}
    if spec.hf_dir is not None:
        files = [*sorted(spec.hf_dir.glob("*.safetensors")), spec.hf_dir / "config.json"]
        return {f.name: file_sha256(cfg, f, "model weights") for f in files}
    return {"hf_id": spec.name}


def finetune_inputs(cfg: Config) -> dict[str, Any]:
    """The adapter's own inputs and upstream keys (:func:`adapter` adds the training code)."""
    # one spelling of the recipe, without what it ignores
    ft = recipe_keys.key_fields(cfg.finetune)
    recipe = recipe_keys.recipe_of(cfg.finetune)
    data: dict[str, Any] = {}
    if recipe_keys.uses_questions(recipe):
        data = {
            "train_questions_sha256": file_sha256(
                cfg, cfg.path(cfg.finetune.train_questions), "train questions"
            ),
            # the leakage guard drops train questions by the evaluation set: it shapes the training data
            "eval_questions_sha256": file_sha256(cfg, cfg.path(cfg.questions), "questions"),
            "eval_split": cfg.split,
            **({"eval_subset": cfg.subset} if cfg.subset else {}),
            "reader": cfg.model.reader,  # qa/raft records are the reader's evaluation prompt
        }
    if recipe_keys.uses_pages(recipe):
        data["articles"] = articles(cfg).key
        # the questions pick the trained pages (scope = question_pages) or the probe's held-out pages, and
        # augmentation reads each page's facts from them
        fc = cfg.finetune
        if fc.scope == "question_pages" or fc.probe or recipe_keys.augment_of(fc):
            data.update(
                questions_sha256=file_sha256(cfg, cfg.path(cfg.questions), "questions"),
                split=cfg.split,
                limit=cfg.limit,
                sample=cfg.sample,
                **({"subset": cfg.subset} if cfg.subset else {}),  # absent = whole split: old keys hold
            )
    # device: on CUDA nf4 switches to bf16 compute and paged 8-bit AdamW, so a CPU adapter is not the same
    return {
        "model": model_identity(cfg),
        "attn_implementation": cfg.model.attn_implementation,  # the attention kernel the adapter trains with
        "data": data,
        "finetune": ft,
        "seed": cfg.seed,
        "device": cfg.device,
    }


def adapter(cfg: Config) -> Artifact:
    return node(cfg, "finetune", {**finetune_inputs(cfg), "code": code_version(*TRAINING_CODE)})
