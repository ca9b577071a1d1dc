"""``bench run`` over several processes: shard answer caches, shard manifests, and the merge.

Shard ``i/n`` answers the questions ``i::n`` of the loaded (sampled, ordered) question list into
``cache/<variant>.shard-i-of-n.jsonl`` (same rows and keys as ``cache/<variant>.jsonl``, which it also reads,
so a single-process run is reused), and records ``cache/shard-i-of-n.json`` and ``cache/config.toml``. The
merge reads every cache file of every run directory given, checks that each (variant, question) has a row,
and writes ``answers.jsonl`` / ``scores.json`` with the same code as a single-process run
(:mod:`bench.eval.results`), in config variant order × question order.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config, config_hash, config_to_toml, load_config
from bench.core.dist import Shard
from bench.eval.results import answer_rows, write_results
from bench.eval.runstate import AnswerCache, RunLock, question_hash, variant_key
from bench.eval.stages import Stages, default_stages
from bench.eval.variants import VariantSpec, get_spec
from bench.io import atomic_write_json, atomic_write_text, read_json
from bench.questions.load import load_questions

log = logging.getLogger(__name__)

CONFIG_FILE = "config.toml"


def _better(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """A row replaces another unless it is an error row replacing an answer."""
    return old is None or bool(old.get("error")) or not new.get("error")


def _absorb(cache: AnswerCache, path: Path) -> None:
    """Add ``path``'s rows to ``cache`` (read-only: nothing is written to ``cache.path``)."""
    for key, row in AnswerCache(path).rows.items():
        if _better(cache.rows.get(key), row):
            cache.rows[key] = row


def shard_cache(cache_dir: Path, name: str, shard: Shard) -> AnswerCache:
    """The cache a process appends to (its own file), holding the rows of the directory's other cache files
    as well: a shard reuses a single-process run's answers, and a plain ``bench run`` after ``--shard``
    processes reuses theirs (it merges, and answers only what is missing)."""
    cache = AnswerCache(cache_dir / f"{name}{shard.suffix}.jsonl")
    own = dict(cache.rows)
    for path in [cache_dir / f"{name}.jsonl", *sorted(cache_dir.glob(f"{name}.shard-*-of-*.jsonl"))]:
        if path != cache.path and path.exists():
            _absorb(cache, path)
    for key, row in own.items():
        if _better(cache.rows.get(key), row):
            cache.rows[key] = row
    return cache


def merged_cache(cache_dirs: list[Path], name: str) -> AnswerCache:
    """Every row of ``<name>.jsonl`` and ``<name>.shard-*-of-*.jsonl`` under the given cache dirs."""
    cache = AnswerCache(cache_dirs[0] / f"{name}.jsonl")
    for d in cache_dirs:
        files = [d / f"{name}.jsonl", *sorted(d.glob(f"{name}.shard-*-of-*.jsonl"))]
        for path in files:
            if path.exists() and path != cache.path:
                _absorb(cache, path)
    return cache


def write_manifest(cfg: Config, cache_dir: Path, shard: Shard, keys: dict[str, str], n: int) -> None:
    """What this shard answered, and the config a ``bench merge`` without flags reloads."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache_dir / CONFIG_FILE, config_to_toml(cfg))
    record = {"shard": str(shard), "config_hash": config_hash(cfg), "keys": keys, "questions": n}
    atomic_write_json(cache_dir / f"shard-{shard.index}-of-{shard.count}.json", record)


def _merged_json(cache_dirs: list[Path], stem: str) -> list[dict[str, Any]]:
    out = []
    for d in cache_dirs:
        for path in [d / f"{stem}.json", *sorted(d.glob(f"{stem}.shard-*-of-*.json"))]:
            if path.exists():
                out.append(read_json(path))
    return out


def merged_resources(cache_dirs: list[Path], keys: dict[str, str]) -> dict[str, Any]:
    """Per variant, the largest peak memory any shard recorded for the current key, and the first shard's
    one-at-a-time latency; no throughput (shards may have run one after another or side by side)."""
    out: dict[str, Any] = {}
    for res in _merged_json(cache_dirs, "resources"):
        for name, r in res.items():
            if keys.get(name) != r.get("key"):
                continue
            prev = out.setdefault(name, {"key": r["key"], "peak_rss_mb": None, "peak_vram_mb": None})
            for m in ("peak_rss_mb", "peak_vram_mb"):
                vals = [v for v in (prev[m], r.get(m)) if v is not None]
                prev[m] = max(vals) if vals else None
            if r.get("single_latency_ms") is not None:
                prev.setdefault("single_latency_ms", r["single_latency_ms"])
    return out


def _missing_error(cache_dirs: list[Path], missing: list[tuple[str, str, int]]) -> BenchError:
    counts = sorted({int(p.stem.rsplit("-", 1)[1]) for d in cache_dirs for p in d.glob("shard-*-of-*.json")})
    n = counts[-1] if counts else 0
    name, qid, pos = missing[0]
    where = f" (question {pos}: shard {pos % n}/{n})" if n else ""
    return BenchError(
        f"{cache_dirs[0]}: {len(missing)} answers missing, the first {name}/{qid}{where}; run that shard "
        "(bench run --shard I/N -o RUN_DIR) and merge again"
    )


def load_merge_config(run_dirs: list[Path], cfg: Config | None) -> Config:
    if cfg is not None:
        return cfg
    path = run_dirs[0] / "cache" / CONFIG_FILE
    if not path.exists():
        raise BenchError(
            f"{path} not found: pass the run's --profile/--set to bench merge, or run a shard first"
        )
    return load_config(path)


def merge(
    cfg: Config,
    run_dirs: list[Path],
    out_dir: Path | None = None,
    *,
    stages: Stages | None = None,
    question_stats: dict[str, int] | None = None,
    questions: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``answers.jsonl`` / ``scores.json`` of ``cfg`` from the shard caches under ``run_dirs``."""
    stages = stages or default_stages()
    out = Path(out_dir) if out_dir is not None else run_dirs[0]
    if questions is None:
        question_stats = {}
        questions = load_questions(cfg, stats=question_stats)
    specs: dict[str, VariantSpec] = {name: get_spec(name) for name in cfg.run.variants}
    keys = {name: variant_key(cfg, spec, stages.artifact_key) for name, spec in specs.items()}
    cache_dirs = [Path(d) / "cache" for d in run_dirs]
    caches = {name: merged_cache(cache_dirs, name) for name in specs}
    missing = [
        (name, q["id"], pos)
        for name, spec in specs.items()
        for pos, q in enumerate(questions)
        if caches[name].get(keys[name], q["id"], question_hash(spec, q), include_errors=True) is None
    ]
    if missing:
        raise _missing_error(cache_dirs, missing)
    info: dict[str, Any] = {}
    for part in _merged_json(cache_dirs, "generator_info"):
        info.update(part)
    rows = answer_rows(cfg, specs, questions, caches, keys)
    resources = merged_resources(cache_dirs, keys)
    with RunLock(out, name="lock.merge"):
        write_results(
            cfg, stages, specs, rows, out, resources, info, (len(questions), question_stats or {}), keys
        )
    log.info("merged %d rows from %d run dir(s) into %s", sum(map(len, rows.values())), len(run_dirs), out)
    return out
