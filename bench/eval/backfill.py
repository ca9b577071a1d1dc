"""Variant keys for a committed run written before ``scores.json`` recorded them, so its answers can be
adopted.

``python -m bench.eval.backfill RUN_DIR`` writes each variant's key (bench.eval.runstate.variant_key: model,
prompt, index, adapter, code versions) into ``RUN_DIR/scores.json`` as ``variant_keys``, with
``variant_keys_backfilled`` saying at which commit and when. A key hashes the code as well as the config, so
it is computed by the code that answered: a temporary git worktree of the run's own commit
(``env.git_commit``) evaluates the run's recorded config there, in a child process with a deadline. A later
``bench run`` then adopts the run's answers of every variant whose key today is the same (bench.eval.adopt;
``--adopt-from RUN_DIR`` for another run directory); a variant whose answers the code since has changed keeps
a different key and is answered again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.config import BenchError
from bench.io import atomic_write_json, read_json

# Run inside the run's own commit: only names every commit since variant keys existed has.
SNIPPET = """
import json, sys
from bench.config import _build
from bench.eval.runstate import variant_key
from bench.eval.stages import default_stages
from bench.eval.variants import get_spec
scores = json.load(open(sys.argv[1], encoding="utf-8"))
cfg = _build(dict(scores["config"]), sys.argv[1])
stages = default_stages()
print(json.dumps({n: variant_key(cfg, get_spec(n), stages.artifact_key) for n in sorted(scores["variants"])}))
"""
TIMEOUT_S = 600


def keys_at_commit(scores_path: Path, commit: str, repo: Path) -> dict[str, str]:
    """The variant keys of the run recorded in ``scores_path``, computed by the code of ``commit``."""
    with tempfile.TemporaryDirectory(prefix="backfill-") as tmp:
        tree = Path(tmp) / "tree"
        git = ["git", "-C", str(repo)]
        made = subprocess.run(
            [*git, "worktree", "add", "--detach", str(tree), commit], capture_output=True, text=True
        )
        if made.returncode != 0:
            raise BenchError(
                f"{scores_path}: no checkout of {commit[:12]} in {repo}: {made.stderr.strip()[-300:]}"
            )
        try:
            env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
            got = subprocess.run(
                [sys.executable, "-c", SNIPPET, str(scores_path.resolve())],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
            )
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], capture_output=True)
    if got.returncode != 0:
        raise BenchError(f"{scores_path}: keys at {commit[:12]} failed: {got.stderr.strip()[-400:]}")
    keys = json.loads(got.stdout.strip().splitlines()[-1])
    return {str(k): str(v) for k, v in keys.items()}


def backfill_keys(run_dir: Path, repo: Path = Path(".")) -> dict[str, Any]:
    """Write ``variant_keys`` into ``run_dir/scores.json`` (see the module doc); returns them."""
    path = run_dir / "scores.json"
    scores = read_json(path)
    if scores.get("variant_keys"):
        raise BenchError(f"{path}: already records variant_keys")
    env = scores.get("env") or {}
    commit = str(env.get("git_commit") or "")
    if not commit or env.get("git_dirty"):
        raise BenchError(f"{path}: the run's code is not a commit (git_commit {commit or 'missing'}, dirty "
                         f"{env.get('git_dirty')}): its keys cannot be recomputed")  # fmt: skip
    keys = keys_at_commit(path, commit, repo)
    scores["variant_keys"] = keys
    scores["variant_keys_backfilled"] = {
        "git_commit": commit,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "how": "python -m bench.eval.backfill: the run's recorded config, keyed by its own commit's code",
    }
    atomic_write_json(path, scores)
    return keys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.eval.backfill", description=__doc__)
    p.add_argument("run_dirs", type=Path, nargs="+")
    a = p.parse_args(argv)
    for run_dir in a.run_dirs:
        try:
            keys = backfill_keys(run_dir)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{run_dir}/scores.json: variant_keys of {len(keys)} variants")
    return 0


if __name__ == "__main__":
    sys.exit(main())
