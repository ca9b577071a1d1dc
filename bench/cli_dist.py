"""The command bodies of the stages that run over several processes: ``bench run`` / ``bench index`` (with
``--shard`` or under a launcher), ``bench finetune`` (under accelerate/torchrun) and ``bench merge``; and
``bench export`` (HF datasets, lm-eval tasks: bench/export).

Kept beside :mod:`bench.cli` (which holds the other stages) so that each stays a readable size.
"""

from __future__ import annotations

import argparse
import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path

from bench.cli import cli_overrides, load_cli_config
from bench.config import BenchError, Config, load_config
from bench.io import answers_file

log = logging.getLogger("bench")


def cmd_run(args: argparse.Namespace) -> int:
    from bench.core.dist import bind_local_device, pick_shard
    from bench.eval import runner

    shard = pick_shard(getattr(args, "shard", None))
    bind_local_device()
    cfg = load_cli_config(args)
    if cfg.judge.enabled and not cfg.judge.model:  # said before the run, not after it
        raise BenchError("judge.enabled needs judge.model (judge.base_url empty: served by vLLM here)")
    out = Path(args.output) if args.output else None
    pages = int(getattr(args, "longform_pages", 0) or 0)
    if pages and (shard.sharded or cfg.run.longform_pages):
        raise BenchError("--longform-pages: not with --shard or a run that is long-form already")
    with _engines_kept(cfg, pages):
        run_dir = runner.run(cfg, out_dir=out, shard=shard, adopt_from=[Path(d) for d in args.adopt_from])
        if shard.sharded and not (shard.launched and shard.index == 0):
            print(f"shard {shard}: {run_dir}/cache (merge: python -m bench merge {run_dir})")
            return 0
        _finish(cfg, run_dir)
        if pages:  # the long-form twin (bench/eval/longform.py), on the same engines
            twin = replace(cfg, run=replace(cfg.run, longform_pages=pages))
            twin_dir = Path(args.longform_output or f"{run_dir}-longform")
            _finish(twin, runner.run(twin, out_dir=twin_dir, adopt_from=[Path(d) for d in args.adopt_from]))
    return 0


def _engines_kept(cfg: Config, longform_pages: int) -> AbstractContextManager[None]:
    """vLLM engines kept for the long-form twin (a second start costs 30-60 s on 2 CPU cores)."""
    if not longform_pages or cfg.model.backend != "vllm":
        return nullcontext()
    from bench.generation.vllm_backend import kept_engines

    return kept_engines()


def _finish(cfg: Config, run_dir: Path) -> None:
    from bench.tracking.track import track_run

    track_run(cfg, run_dir)  # MLflow (tracking.*): once per content, a cached rerun logs nothing
    print(f"results: {run_dir}")
    if cfg.judge.enabled:  # LLM-judged metrics beside the run's own (off by default; bench/eval/judge.py)
        from bench.eval.judge import judge_run

        judge_run(cfg, run_dir)


def cmd_index(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from bench import artifacts
    from bench.core.dist import artifact_lock, bind_local_device, pick_shard
    from bench.retrieval import index_shards

    shard = pick_shard(getattr(args, "shard", None))
    bind_local_device()
    cfg = load_cli_config(args, [f"corpus={args.corpus}"] if args.corpus else [])
    # one process beside another `bench index` or `bench run` building the same index (two `make bench`):
    # take turns (the shards of a sharded build each write their own share)
    turn = (
        nullcontext() if shard.sharded else artifact_lock(cfg.results_path, "index", artifacts.index(cfg).key)
    )
    with turn:
        print(index_shards.build_index_sharded(cfg, shard).summary())
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from bench import artifacts
    from bench.core.dist import artifact_lock, shard_from_env, warn_one_process_launch
    from bench.tracking.track import track_finetune
    from bench.training import finetune

    warn_one_process_launch()
    if args.dry_run or args.output:
        import json

        from bench.training import sft_recipes

        if not (args.dry_run and args.output):
            raise BenchError("finetune --dry-run needs -o FILE (and -o only goes with --dry-run)")
        summary = sft_recipes.dry_run(load_cli_config(args), Path(args.output))
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    cfg = load_cli_config(args)
    _convert_once(cfg)
    if shard_from_env().launched:  # every rank trains together (DDP): no turns
        out = finetune.run_finetune(cfg)
    else:  # beside other processes that may build the same adapter (a run, a sweep job): take turns
        with artifact_lock(cfg.results_path, "finetune", artifacts.adapter(cfg).key):
            out = finetune.run_finetune(cfg)
    if shard_from_env().index == 0:  # rank 0 logs the adapter (MLflow), once per adapter key
        track_finetune(cfg, Path(out))
    print(f"adapter: {out}")
    return 0


def _convert_once(cfg: Config) -> None:
    """A bundled GGUF generator's safetensors before training (once per machine), its file parsed once
    (bench.generation.gguf_reader: transformers would parse it three times, ~6 s each here)."""
    from bench.generation import models
    from bench.generation.gguf_reader import shared_readers
    from bench.model_registry import resolve_model

    if resolve_model(cfg).gguf_path is not None:
        with shared_readers():
            models.ensure_hf_model(cfg)


def cmd_merge(args: argparse.Namespace) -> int:
    """Merge shard caches: the run's own config (cache/config.toml) unless --profile/--set are given."""
    from bench.environment import resolve_device
    from bench.eval import shards
    from bench.tracking.track import track_run

    run_dirs = [Path(d) for d in args.run_dirs]
    for d in run_dirs:
        if not (d / "cache").is_dir():
            raise BenchError(f"{d}: no cache/ directory (not a run directory, or no shard has run there)")
    flags = args.config or cli_overrides(args)
    cfg = resolve_device(load_config(args.config, cli_overrides(args))) if flags else None
    cfg = shards.load_merge_config(run_dirs, cfg)
    out = shards.merge(cfg, run_dirs, Path(args.output) if args.output else None)
    track_run(cfg, Path(out))
    print(f"results: {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import json

    from bench.export.hf import export

    run_dir = Path(args.run) if args.run else None
    if run_dir is not None and not answers_file(run_dir).exists():
        raise BenchError(f"--run {run_dir}: no answers.jsonl (a finished `bench run` directory)")
    out = export(load_cli_config(args), Path(args.output), run_dir)
    print(json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in out.items()}, indent=2))
    return 0
