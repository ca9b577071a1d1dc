"""Multistream vs single-stream ingest of the ptwiki sample, 1 and 2 workers, back to back in one run.

The multistream copy (100 pages per bz2 stream + index, built by ``bench.ingest.multistream.build``) lives in
``$PERF_MULTISTREAM_DIR`` (default ``/tmp/ptwiki-multistream``) and is reused when present; it is never
committed. Each ingest runs as a subprocess (peak RSS per competitor); the multistream outputs must be
byte-identical to the single-stream ones. Results: ``results/perf/multistream.json``.

Run: ``.venv/bin/python -m pytest tests/perf/test_perf_multistream.py -m perf -s`` (about 2 minutes on 2
quiet cores, plus about a minute to build the copy the first time).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, SHARED
from test_perf_ingest import _run_rss

from bench.core.machine import MachineProbe
from bench.ingest import multistream

SAMPLE = SHARED / "corpora" / "ptwiki-sample.xml.bz2"
COPY_DIR = Path(os.environ.get("PERF_MULTISTREAM_DIR", "/tmp/ptwiki-multistream"))
RESULTS: dict[str, dict[str, Any]] = {}
PROBE: MachineProbe | None = None
OUTPUTS: dict[str, str] = {}

pytestmark = [
    pytest.mark.perf,
    pytest.mark.skipif(not SAMPLE.exists(), reason=f"{SAMPLE} is absent (shared corpora not mounted)"),
]


@pytest.fixture(scope="module")
def copy() -> tuple[Path, Path]:
    dump = COPY_DIR / "ptwiki-sample-multistream.xml.bz2"
    index = COPY_DIR / "ptwiki-sample-multistream-index.txt.bz2"
    if dump.exists() and index.exists() and dump.stat().st_mtime > SAMPLE.stat().st_mtime:
        RESULTS["build"] = {"reused": str(COPY_DIR)}
        return dump, index
    start = time.perf_counter()
    built = multistream.build(SAMPLE, COPY_DIR)
    RESULTS["build"] = {"seconds": time.perf_counter() - start, "mb": built[0].stat().st_size / 1e6}
    return built


@pytest.mark.parametrize(("source", "workers"), [("single", 1), ("multi", 1), ("single", 2), ("multi", 2)])
def test_ingest(benchmark: Any, copy: tuple[Path, Path], tmp_path: Path, source: str, workers: int) -> None:
    global PROBE
    PROBE = PROBE or MachineProbe().__enter__()  # the whole measurement: first run to summary
    dump = SAMPLE if source == "single" else copy[0]
    out = tmp_path / "a.jsonl"
    cmd = [sys.executable, "-m", "bench", "ingest", str(dump), "-o", str(out), "--workers", str(workers)]
    wall, rss, summary = benchmark.pedantic(_run_rss, args=(cmd,), rounds=1, iterations=1)
    name = f"{source}_w{workers}"
    OUTPUTS[name] = hashlib.sha256(out.read_bytes()).hexdigest()
    streams = re.search(r"([\d,]+) bz2 streams read through the index", summary)
    RESULTS[name] = {
        "seconds": wall,
        "peak_rss_mb": rss,
        "streams": int(streams.group(1).replace(",", "")) if streams else 0,
    }
    benchmark.extra_info.update(RESULTS[name])
    print(f"\n{name}: {RESULTS[name]}")
    if source == "multi":
        assert RESULTS[name]["streams"] > 270  # 27,074 pages / 100
        assert OUTPUTS[name] == OUTPUTS.get(f"single_w{workers}", OUTPUTS[name]), "articles JSONL differs"


def test_summary() -> None:
    """Ratios of the runs above (same process, back to back); written to results/perf/multistream.json."""
    names = ("single_w1", "multi_w1", "single_w2", "multi_w2")
    if not set(names) <= RESULTS.keys():
        pytest.skip("run the whole module to get the ratios")
    t = {n: RESULTS[n]["seconds"] for n in names}
    ratios = {
        "multi_w1_over_w2": t["multi_w1"] / t["multi_w2"],
        "single_w1_over_w2": t["single_w1"] / t["single_w2"],
        "single_over_multi_w1": t["single_w1"] / t["multi_w1"],
        "single_over_multi_w2": t["single_w2"] / t["multi_w2"],
    }
    identical = len(set(OUTPUTS.values())) == 1
    out = REPO / "results" / "perf" / "multistream.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = PROBE.record() if PROBE else None
    doc = {"runs": RESULTS, "ratios": ratios, "byte_identical": identical, "machine": machine}
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print("\n" + json.dumps(doc, indent=1))
    assert identical
    assert ratios["multi_w1_over_w2"] >= 1.5  # decompression parallelises: near 2 on 2 free cores
