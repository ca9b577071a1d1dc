"""What the run stage needs from the stages above it (index, adapter, generators), behind one seam that tests
replace with fakes: :class:`Stages`, plus the leakage re-check of the adapter and the upstream record
(artifact keys, build costs) that goes into ``scores.json``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config
from bench.eval.costs import build_costs
from bench.eval.runstate import artifact_key
from bench.eval.variants import VariantSpec
from bench.io import read_json
from bench.questions import leakage

log = logging.getLogger(__name__)


@dataclass
class Stages:
    """The other stages the runner calls; tests inject fakes."""

    open_retriever: Callable[[Config], Any]
    ensure_adapter: Callable[[Config], Path]
    adapter_dir: Callable[[Config], Path]
    make_generators: Callable[[Config, Path | None], dict[str, Any]]
    training_question_ids: Callable[[Config], set[str]]
    # "index" | "finetune" → the artifact key the answers depend on (bench.artifacts)
    artifact_key: Callable[[Config, str], str] = artifact_key


def default_stages() -> Stages:
    def open_retriever(cfg: Config) -> Any:
        from bench.retrieval.index import open_retriever as f

        return f(cfg)

    def ensure_adapter(cfg: Config) -> Path:
        from bench.training.finetune import ensure_adapter as f

        return Path(f(cfg))

    def adapter_dir(cfg: Config) -> Path:
        from bench.training.finetune import adapter_dir as f

        return Path(f(cfg))

    def make_generators(cfg: Config, adapter: Path | None) -> dict[str, Any]:
        from bench.generation.registry import make_generators as f

        return dict(f(cfg, adapter))

    def training_question_ids(cfg: Config) -> set[str]:
        from bench.training.sft_qa import training_question_ids as f

        return {str(q) for q in f(cfg)}

    return Stages(open_retriever, ensure_adapter, adapter_dir, make_generators, training_question_ids)


def check_leakage(cfg: Config, stages: Stages, questions: list[dict[str, Any]]) -> None:
    """BenchError when an evaluation question's id is among the adapter's training questions."""
    from bench.training.sft_qa import check_leakage as check

    check(stages.training_question_ids(cfg), (q["id"] for q in questions))


def load_adapter(cfg: Config, stages: Stages, questions: list[dict[str, Any]]) -> Path:
    """The adapter the FT variants load (trained now if missing), re-checked for leakage against what it
    recorded about its training questions (texts, answers, context hashes), not only the config's ids."""
    target = stages.adapter_dir(cfg)
    if not target.exists():
        log.info("no adapter at %s: fine-tuning one now (bench finetune)", target)
    adapter = stages.ensure_adapter(cfg)
    meta_path = Path(adapter) / "train_metadata.json"
    if meta_path.exists():
        meta = read_json(meta_path)
        recorded = (meta.get("data") or {}).get("training_questions") or [] if isinstance(meta, dict) else []
        leakage.check_adapter(recorded, questions, cfg.finetune)
    return adapter


def upstream_keys(cfg: Config, stages: Stages, specs: dict[str, VariantSpec]) -> dict[str, str]:
    """The artifact keys this run's answers depend on (scores.json["artifacts"])."""
    out = {}
    if any(s.uses_retrieval for s in specs.values()):
        out["index"] = stages.artifact_key(cfg, "index")
    if any(s.uses_adapter for s in specs.values()):
        out["finetune"] = stages.artifact_key(cfg, "finetune")
    return out


def build_costs_record(cfg: Config, stages: Stages, specs: dict[str, VariantSpec]) -> dict[str, Any]:
    """Build costs of the index and adapter this run's variants used (``bench.eval.costs``)."""
    adapter = None
    if any(s.uses_adapter for s in specs.values()):
        target = Path(stages.adapter_dir(cfg))
        adapter = target if (target / "train_metadata.json").exists() else None
    try:
        return build_costs(cfg, any(s.uses_retrieval for s in specs.values()), adapter)
    except BenchError as exc:
        log.warning("build costs not recorded: %s", exc)
        return {}
