"""``python -m bench sweep``: a grid over config keys, one run directory per point, every stage cached.

``--set key=v1,v2,v3`` on a scalar key is an axis of the grid (tuple keys such as ``finetune.views`` separate
their grid values with ``|``: ``--set views=plain|plain,titled``); a single value is fixed for every point.
Each point runs the fine-tuned variants (``ft``, ``ft_rag``) with its own adapter (trained on demand, cached
by content, so a rerun reuses it); a point with ``finetune.epochs=0`` is the untrained model: it is run once,
as the *reference* point — base, RAG and the no-model baselines — which the learning curve uses both as its
0-epoch point and as its horizontal lines. ``--reference RUN`` seeds every point's answer caches from a run
of the same profile (the cache keys decide what still applies), so answers that run has are not regenerated.

``results/sweeps/<name>/sweep.json`` lists the points and their run directories; ``bench report --sweep DIR``
renders the "Learning curve" section from the points' ``scores.json`` (bench/reporting/curves.py).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import shutil
import typing
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config, load_config, resolve_key, section_types
from bench.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

POINT_VARIANTS = ("ft", "ft_rag")
REFERENCE_VARIANTS = ("base", "rag", "echo", "picker_oracle", "picker_rag", "span_oracle", "span_rag")
REFERENCE = "reference"


def _is_tuple_key(key: str) -> bool:
    sec, name = resolve_key(key)
    if sec is None:
        return False
    hint = typing.get_type_hints(section_types()[sec])[name]
    return typing.get_origin(hint) is tuple


def parse_grid(overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(fixed ``key=value`` overrides, axes ``key → values``) from the sweep's ``--set`` arguments."""
    fixed: list[str] = []
    axes: dict[str, list[str]] = {}
    for item in overrides:
        if "=" not in item:
            raise BenchError(f"--set expects key=value, got {item!r}")
        key, value = (s.strip() for s in item.split("=", 1))
        sep = "|" if _is_tuple_key(key) else ","
        values = [v.strip() for v in value.split(sep) if v.strip()]
        if len(values) > 1:
            if key in axes:
                raise BenchError(f"sweep: axis {key!r} given twice")
            axes[key] = values
        else:
            fixed.append(f"{key}={value}")
    return fixed, axes


def point_name(point: dict[str, str]) -> str:
    parts = [f"{k.rsplit('.', 1)[-1]}-{v}" for k, v in point.items()]
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", "_".join(parts)) or "point"


def _untrained(cfg: Config) -> bool:
    return cfg.finetune.epochs == 0 and cfg.finetune.max_steps == 0


def plan(profile: str | None, overrides: list[str]) -> list[dict[str, Any]]:
    """The points of the grid (the reference first), each with its name, overrides and config."""
    fixed, axes = parse_grid(overrides)
    keys = list(axes)
    full_keys = {_full_key(k) for k in keys}
    ref_cfg = load_config(
        profile,
        [*fixed, "finetune.epochs=0", "finetune.max_steps=0", f"run.variants={','.join(REFERENCE_VARIANTS)}"],
    )
    points: list[dict[str, Any]] = [{"name": REFERENCE, "axes": {}, "overrides": fixed, "cfg": ref_cfg}]
    for combo in itertools.product(*(axes[k] for k in keys)):
        point = dict(zip(keys, combo, strict=True))
        sets = [*fixed, *(f"{k}={v}" for k, v in point.items())]
        cfg = load_config(profile, [*sets, f"run.variants={','.join(POINT_VARIANTS)}"])
        if _untrained(cfg) or (cfg.finetune.epochs == 0 and "finetune.epochs" in full_keys):
            continue  # the untrained model: that is the reference point
        points.append({"name": point_name(point), "axes": point, "overrides": sets, "cfg": cfg})
    return points


def _full_key(key: str) -> str:
    sec, name = resolve_key(key)
    return f"{sec}.{name}" if sec else name


def _snapshot_budgets(points: list[dict[str, Any]]) -> None:
    """With a constant learning rate, a point's run also saves the adapters of the smaller budgets of its
    curve (``finetune.snapshot_epochs``, not part of the adapter key; bench/training/snapshots.py): the
    largest budget of each curve runs first, so one training per curve gives every point's adapter."""
    from bench import recipe_keys

    budgets = sorted({p["cfg"].finetune.epochs for p in points[1:]})
    for p in points[1:]:
        ft = p["cfg"].finetune
        if ft.lr_scheduler != "constant_with_warmup" or ft.max_steps:
            continue
        if recipe_keys.recipe_of(ft) not in recipe_keys.SCHEDULED:
            continue
        below = tuple(e for e in budgets if 0 < e < ft.epochs)
        p["cfg"] = dataclasses.replace(p["cfg"], finetune=dataclasses.replace(ft, snapshot_epochs=below))


def run_order(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reference first, then every point, largest training budget first (its run snapshots the rest)."""
    return [points[0], *sorted(points[1:], key=lambda p: -p["cfg"].finetune.epochs)]


def seed_from(run_dir: Path, reference: Path, variants: tuple[str, ...]) -> list[str]:
    """Copy the answer caches of ``reference`` (a run of the same profile) into a point's run directory, so
    answers it already has are reused; the cache keys decide whether they still apply (a point whose
    adapter or prompt differs regenerates them)."""
    copied = []
    for name in variants:
        src, dst = reference / "cache" / f"{name}.jsonl", run_dir / "cache" / f"{name}.jsonl"
        if src.exists() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
            copied.append(name)
    return copied


def run_sweep(
    profile: str | None,
    overrides: list[str],
    name: str,
    out_root: Path | None = None,
    reference: Path | None = None,
) -> Path:
    """Run every point of the grid (cached stages are reused); returns the sweep directory."""
    from bench.eval import runner

    points = plan(profile, overrides)
    _snapshot_budgets(points)
    root = (out_root or points[0]["cfg"].results_path / "sweeps") / name
    manifest: dict[str, Any] = {
        "name": name,
        "profile": profile or "default",
        "overrides": overrides,
        "axes": parse_grid(overrides)[1],
        "points": [],
    }
    for i, point in enumerate(run_order(points), 1):
        run_dir = root / point["name"]
        if reference is not None:
            seeded = seed_from(run_dir, reference, point["cfg"].run.variants)
            log.info(
                "sweep: %s: answer caches seeded from %s: %s", point["name"], reference, seeded or "none"
            )
        log.info("sweep %s: point %d/%d %s", name, i, len(points), point["name"])
        runner.run(point["cfg"], out_dir=run_dir)
        manifest["points"].append(
            {
                "name": point["name"],
                "axes": point["axes"],
                "overrides": point["overrides"],
                "run_dir": point["name"],
            }
        )
        order = [p["name"] for p in points]  # the manifest lists the points in grid order
        manifest["points"].sort(key=lambda p: order.index(p["name"]))
        atomic_write_json(
            root / "sweep.json", manifest
        )  # after every point: a killed sweep keeps what it did
    return root


def load_sweep(root: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(sweep.json, point name → scores.json) of a finished or partial sweep."""
    path = Path(root) / "sweep.json"
    if not path.exists():
        raise BenchError(f"{path} not found: run `python -m bench sweep` first")
    manifest = read_json(path)
    scores = {}
    for point in manifest.get("points") or []:
        sp = Path(root) / point["run_dir"] / "scores.json"
        if not sp.exists():
            raise BenchError(f"{path}: point {point['name']!r} has no {sp}")
        scores[point["name"]] = read_json(sp)
    return manifest, scores


def provenance(scores: dict[str, Any]) -> dict[str, str | None]:
    """What a point's answers depend on besides its own training: the index it retrieved from (artifact key,
    else embedder/retrieval) and the question file (sha256). Points of one curve must share it."""
    index = (scores.get("costs") or {}).get("index") or {}
    artifacts = scores.get("artifacts") or {}
    cfg_index = (scores.get("config") or {}).get("index") or {}
    key = artifacts.get("index") or index.get("key")
    return {
        "index": str(key) if key else None,
        "retriever": "/".join(str(cfg_index.get(f)) for f in ("embedder", "embedder_model", "retrieval")),
        "questions": ((scores.get("datasets") or {}).get("questions") or {}).get("sha256"),
    }


def check_points(scores: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """(points consistent with the reference, {point: why not}) — a point whose index or question file
    differs from the reference point's is not on the same curve; the curve refuses it."""
    ref = provenance(scores.get(REFERENCE) or {})
    same, refused = [], {}
    for name, sc in scores.items():
        if name == REFERENCE:
            continue
        mine = provenance(sc)
        diff = [f for f in ("index", "retriever", "questions") if mine[f] and ref[f] and mine[f] != ref[f]]
        if diff:
            refused[name] = ", ".join(f"{f} {mine[f]} ≠ reference {ref[f]}" for f in diff)
        else:
            same.append(name)
    return same, refused
