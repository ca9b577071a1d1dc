"""README perf blocks: renderers on small hand-made JSON, the machine verdict, README ↔ renderer coverage."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from bench.config import BenchError
from bench.core import machine
from bench.reporting import perf_tables, readme, scale_tables

REPO = Path(__file__).resolve().parent.parent


def quiet_machine(**over: Any) -> dict[str, Any]:
    m = {
        "cpu_model": "Test CPU",
        "cores": 2,
        "torch": "2.0",
        "load_average_start": [0.1, 0.2, 0.3],
        "load_average_end": [1.9, 1.0, 0.5],
        "wall_s": 100.0,
        "own_cpu_s": 150.0,
        "others_cpu_s": 4.0,
        "niced_cpu_s": 0.0,
        "steal_s": 0.0,
    }
    return {**m, **over}


def test_machine_line_quiet_and_contended() -> None:
    line = machine.machine_line(quiet_machine())
    assert line == "quiet — Test CPU, 2 cores, torch 2.0; load 0.10 → 1.90; other processes 2% of the CPU"
    busy = machine.machine_line(quiet_machine(others_cpu_s=10.0, niced_cpu_s=20.0))
    assert busy.startswith("*contended* — Test CPU") and "other processes 15% of the CPU (10% niced)" in busy
    # without /proc/stat figures, the load average at start decides
    old = {"cpu_model": "X", "cores": 2, "load_average_start": [1.5, 1.0, 1.0]}
    assert machine.machine_line(old).startswith("*contended*")
    assert machine.machine_line({**old, "load_average_start": [0.2, 0, 0]}).startswith("quiet")
    assert machine.machine_line(None).startswith("*contended?*")


def test_own_niced_threads_are_not_other_processes() -> None:
    """qdrant-edge runs its optimiser threads niced: a record whose own CPU sat in the nice column counts
    others from busy + nice minus own (``others_counts_niced``), so it is not called contended for that."""
    own_niced = quiet_machine(own_cpu_s=180.0, others_cpu_s=3.0, niced_cpu_s=120.0, others_counts_niced=True)
    assert machine.machine_line(own_niced).endswith("other processes 2% of the CPU")
    # an early record (others from busy only) still adds the niced CPU
    assert machine.machine_line(quiet_machine(niced_cpu_s=120.0)).startswith("*contended*")


def test_machine_probe_records_the_window() -> None:
    with machine.MachineProbe() as probe:
        sum(range(200_000))
    rec = probe.record()
    assert rec["cores"] >= 1 and rec["cpu_model"] and len(rec["load_average_start"]) == 3
    assert rec["wall_s"] >= 0 and probe.record() == rec  # the end sample is taken once


def test_render_ingest() -> None:
    doc = {
        "corpus": "sample.xml.bz2",
        "xml_mb": 99.77,
        "runs": {
            "bz2": {"seconds": 3.2, "mb": 99.77},
            "wikiextractor": {"seconds": 22.44, "peak_rss_mb": 29.5},
            "ingest_w1": {"seconds": 20.63, "peak_rss_mb": 42.7},
            "ingest_w2": {"seconds": 10.9, "peak_rss_mb": 60.9},
            "rss": {"prefix_mb": 40.0, "full_mb": 42.7, "ratio": 1.0675},
        },
        "ratios": {"wikiextractor_over_ingest_w1": 1.0877, "ingest_w1_over_w2": 1.7},
        "goals": {"wikiextractor_over_ingest_w1": 1.0, "ingest_w1_over_w2": 1.8},
        "accounting": {"pages_seen": 27074, "articles": 27021, "empty": 35, "redirects": 8,
                       "other_namespace": 10, "ns0_non_redirect": 27056, "residue": 0},
        "machine": quiet_machine(),
    }  # fmt: skip
    text = perf_tables.render_ingest(doc)
    assert text.startswith(
        "`sample.xml.bz2`: 27,074 pages, 99.8 MB of XML; one pytest run, back to back; quiet"
    )
    assert "| bz2 decompression only (the ceiling) | 3.20 | – |" in text
    assert "| `bench ingest`, 2 workers | 10.90 | 60.9 |" in text
    assert "WikiExtractor / ingest (1 worker) = 1.09 (goal ≥ 1.0: met)" in text
    assert "2 workers over 1 = 1.70 (goal ≥ 1.8: **not met**)" in text
    assert "27,021 were written and 35 counted as empty; 8 redirects and 10 other-namespace" in text
    assert "40.0 MB on a 10 % prefix, 42.7 MB on the whole file (1.07×)" in text


def retrieval_doc(embedder: str, dense: float, default: bool) -> dict[str, Any]:
    modes = {m: {"recall@5": dense + i / 100, "answer_in_context@5": dense, "mrr": 0.5} for i, m in
             enumerate(("dense", "sparse", "hybrid"))}  # fmt: skip
    modes["hybrid"]["answer_in_context@5"] = dense + 0.05
    return {**modes, "embedder": embedder, "n": 900, "k": 5, "mrr_depth": 10, "questions": "q.jsonl",
            "split": "", "corpus": "c.xml", "articles": 339, "chunks": 2287, "default_embedder": default,
            "machine": quiet_machine(others_cpu_s=80.0)}  # fmt: skip


def test_render_retrieval_default_embedder_first() -> None:
    text = perf_tables.render_retrieval(
        # "(default)" follows the default profile now, not the flag recorded at measurement time
        [retrieval_doc("minilm", 0.7, True), retrieval_doc("e5-torch/original/bfloat16", 0.9, False)]
    )
    assert text.startswith(
        "900 questions of `q.jsonl` (split all) over `c.xml`: 339 articles, 2,287 chunks; k = 5"
    )
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert rows[0] == "| embedder | mode | recall@5 | answer-in-context@5 | MRR |"
    assert rows[1] == "| e5-torch/original/bfloat16 (default) | dense | 0.900 | 0.900 | 0.500 |"
    assert rows[3] == "| e5-torch/original/bfloat16 (default) | hybrid (RRF) | 0.920 | 0.950 | 0.500 |"
    assert rows[4] == "| minilm | dense | 0.700 | 0.700 | 0.500 |"
    assert "|---|---|---:|" in text
    assert "- minilm: best answer-in-context@5 in hybrid (RRF) mode; *contended*" in text


def test_render_backends() -> None:
    def speed(s: float, tps: float) -> dict[str, float]:
        return {"s_per_question": s, "new_tokens_per_s": tps}

    doc = {
        "n_questions": 15,
        "max_new_tokens": 24,
        "info": {"llamacpp": {"quantization": "Q4_K_M"}, "transformers": {"quantization": "bfloat16"}},
        "closed_book": {"llamacpp": speed(1.22, 17.4), "transformers": speed(1.77, 11.9), "agreement": 0.8,
                        "speedup_llamacpp": 1.45},
        "with_context": {"llamacpp": speed(2.89, 7.0), "transformers": speed(1.89, 10.8), "agreement": 1.0,
                         "speedup_llamacpp": 0.654},
        "machine": quiet_machine(),
    }  # fmt: skip
    text = perf_tables.render_backends(doc)
    assert text.startswith("15 questions, greedy, ≤ 24 new tokens, both backends in one process")
    assert "| closed book | llamacpp (Q4_K_M) | 1.22 | 17.4 | 0.80 |" in text
    assert "| gold context | transformers (bfloat16) | 1.89 | 10.8 | – |" in text
    assert (
        "closed book: llama.cpp 1.45× faster per question; with gold context: transformers 1.53× faster"
        in text
    )


def test_render_batched() -> None:
    def run(base: float, rag: float, same: int) -> dict[str, Any]:
        return {"wall_s": base + rag + 12, "generation_s": {"base": base, "rag": rag},
                "identical_to_batch1": {"base": same, "rag": 16},
                "f1_qstripped": {"base": 0.18, "rag": 0.377}}  # fmt: skip

    doc = {"backend": "transformers", "dtype": "bfloat16", "n_questions": 16, "questions": "q.jsonl",
           "split": "dev", "machine": quiet_machine(),
           "runs": {"8": run(9.8, 22.4, 13), "1": run(31.8, 41.5, 16), "4": run(14.9, 23.8, 13)}}  # fmt: skip
    text = perf_tables.render_batched(doc)
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert rows[1] == "| 1 | 31.8 | 41.5 | 85.3 | – | 0.180 / 0.377 |"
    assert rows[2] == "| 4 | 14.9 | 23.8 | 50.7 | 13/16 / 16/16 | 0.180 / 0.377 |"
    assert rows[3].startswith("| 8 | 9.8 | 22.4 |")
    assert (
        "over each batch size (> 1 = faster): batch 4: base 2.1×, RAG 1.7×; batch 8: base 3.2×, RAG 1.9×."
        in text
    )


def test_perf_blocks_render_only_when_their_json_exists(tmp_path: Path) -> None:
    perf = tmp_path / "perf"
    perf.mkdir()
    assert all(load(perf) is None for load in readme.PERF_BLOCKS.values())
    (perf / "retrieval-faquad-a.json").write_text(json.dumps(retrieval_doc("a", 0.9, True)), encoding="utf-8")
    found = readme.PERF_BLOCKS["retrieval"](perf)
    assert found is not None and "| a | dense | 0.900 |" in found[1]


def test_every_readme_block_has_a_renderer() -> None:
    """A block nobody renders would keep hand-typed (or stale) figures: every marker must be known."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"--readme-block (\w[\w-]*)=", (REPO / "Makefile").read_text(encoding="utf-8")))
    known = set(readme.RUN_BLOCKS) | set(readme.PERF_BLOCKS) | named
    names = readme.block_names(text)
    assert names, "README.md has no generated blocks"
    assert [n for n in names if n not in known] == []
    for name in names:
        assert text.count(f"<!-- {name}:start -->") == 1 and f"<!-- {name}:end -->" in text


@pytest.mark.parametrize("name", ["ingest", "retrieval", "backends", "batched", "install", "train-speed"])
def test_performance_page_has_the_perf_blocks(name: str) -> None:
    assert name in readme.block_names((REPO / "docs" / "performance.md").read_text(encoding="utf-8"))


def test_named_run_blocks_match_the_makefile() -> None:
    named = set(re.findall(r"--readme-block (\w[\w-]*)=", (REPO / "Makefile").read_text(encoding="utf-8")))
    assert named == set(readme.NAMED_RUN_BLOCKS)
    assert {"facts", "reader"} <= set(readme.block_names((REPO / "docs" / "results.md").read_text("utf-8")))


def test_update_readme_blocks_fills_perf_blocks_whose_json_exists(tmp_path: Path) -> None:
    from test_report import fake_scores, write_run

    run = write_run(tmp_path, fake_scores("after"))
    perf = tmp_path / "perf"
    perf.mkdir()
    doc = retrieval_doc("e", 0.8, True)
    (perf / "retrieval-faquad-e.json").write_text(json.dumps(doc), encoding="utf-8")
    names = ("results", "retrieval", "ingest")
    readme_path = tmp_path / "README.md"
    readme_path.write_text("".join(f"<!-- {n}:start -->\nold\n<!-- {n}:end -->\n" for n in names), "utf-8")
    lines = readme.update_readme_blocks(readme_path, run, None, {}, perf_dir=perf)
    assert [line.split()[0] for line in lines] == ["results", "retrieval"]  # no ingest.json: not rendered
    text = readme_path.read_text(encoding="utf-8")
    assert "| e | hybrid (RRF) | 0.820 | 0.850 | 0.500 |" in text
    assert "<!-- ingest:start -->\nold\n<!-- ingest:end -->" in text


def test_render_install_rows_per_pip_cache() -> None:
    run = {"pip_cache": "cold", "command": "make install", "seconds": 201.4, "commit": "abcdef123"}
    doc = {"runs": [run], "machine": quiet_machine()}
    text = perf_tables.render_install(doc)
    assert "| pip cache cold | `make install` | 201 | abcdef1 |" in text
    assert "quiet — Test CPU" in text
    now = {**run, "cache": "empty uv and pip caches", "seconds": 74.6}
    assert "| empty uv and pip caches | `make install` | 75 | abcdef1 |" in perf_tables.render_install(
        {"runs": [now], "machine": quiet_machine()}
    )


def test_install_timing_clones_the_commit_and_empties_the_caches_when_cold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bench.perf install: a clone of the commit per run, make install in it; cold runs get new cache dirs;
    a dirty tree or a failed install writes nothing."""
    import subprocess

    from bench.perf import install

    calls: list[tuple[list[str], dict[str, str] | None]] = []

    def fake_run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        env = kw.get("env")
        calls.append((cmd, env if isinstance(env, dict) else None))
        return subprocess.CompletedProcess(cmd, 2 if cmd == ["make", "install"] and fail else 0)

    fail = False
    monkeypatch.setattr(install.subprocess, "run", fake_run)
    monkeypatch.setattr(install, "git_state", lambda: {"git_commit": "c0ffee12", "git_dirty": False})
    doc = install.measure(("warm", "cold"))
    makes = [env for cmd, env in calls if cmd == ["make", "install"]]
    assert len(makes) == 2 and all(env is not None for env in makes)
    assert "bench-install-" in str(makes[1].get("UV_CACHE_DIR")) and makes[1].get("PIP_CACHE_DIR")  # type: ignore[union-attr]
    assert makes[0].get("UV_CACHE_DIR") == os.environ.get("UV_CACHE_DIR")  # type: ignore[union-attr]
    assert [c for c, _ in calls if c[:2] == ["git", "checkout"]] == [
        ["git", "checkout", "-q", "c0ffee12"]
    ] * 2
    assert [r["cache"] for r in doc["runs"]] == [install.CACHES["warm"], install.CACHES["cold"]]
    assert all(r["rc"] == 0 and r["commit"] == "c0ffee12" for r in doc["runs"]) and doc["machine"]["cores"]
    fail = True
    with pytest.raises(RuntimeError, match="nothing written"):
        install.measure(("warm",))
    monkeypatch.setattr(install, "git_state", lambda: {"git_commit": "c0ffee12", "git_dirty": True})
    with pytest.raises(RuntimeError, match="commit first"):
        install.measure(("warm",))


DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_perf_blocks_in_docs_are_rendered_from_committed_json(page: Path) -> None:
    """Each perf block of README/docs equals what its committed results/perf JSON renders to now: a hand edit
    inside a block, or a JSON re-measured without `make report-readme`, fails here."""
    text = page.read_text(encoding="utf-8")
    for name, src, body in readme.perf_bodies(readme.block_names(text)):
        inside = text.split(f"<!-- {name}:start -->", 1)[1].split(f"<!-- {name}:end -->", 1)[0]
        assert inside == "\n" + str(body), f"{page.name}: block {name} is stale against {src}"


def test_update_doc_blocks_renders_perf_blocks_and_refuses_unknown_ones(tmp_path: Path) -> None:
    perf = tmp_path / "perf"
    perf.mkdir()
    (perf / "retrieval-faquad-e.json").write_text(json.dumps(retrieval_doc("e", 0.8, True)), encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("a\n<!-- retrieval:start -->\n| 9.99 |\n<!-- retrieval:end -->\nb\n", encoding="utf-8")
    assert readme.update_doc_blocks(page, perf)[0].startswith("retrieval updated")
    assert "9.99" not in page.read_text(encoding="utf-8")
    assert readme.update_doc_blocks(page, perf)[0].startswith("retrieval unchanged")
    page.write_text("<!-- hand-typed:start -->\n1 ms\n<!-- hand-typed:end -->\n", encoding="utf-8")
    with pytest.raises(BenchError, match="hand-typed"):
        readme.update_doc_blocks(page, perf)


def test_index_projection_scales_from_the_measured_run() -> None:
    doc = {
        "points": 1_000_000,
        "machine": quiet_machine(),
        "build": {"upsert_s": 60.0, "hnsw_build_s": 600.0, "build_rss": {"VmHWM": 8192.0}},
        "search": {"disk_mb": 2048.0, "rss_after_queries_mb": {"RssAnon": 512.0}},
    }
    text = scale_tables.render_index_projection(doc)
    assert "| on disk, GiB (float32 originals + int8 + graph + 200-byte payloads) | 2.0 | 20.0 |" in text
    assert "| peak RSS building one appendable segment, GiB | 8.0 | 80.0 |" in text
    assert "| upsert, minutes | 1.0 | 10.0 |" in text
    assert "| 10.0 | 116.7 |" in text  # 10 x log(1e7)/log(1e6) = 11.67 x the measured HNSW build
    assert "not measured at 10,000,000" in text
    assert "HNSW build, minutes on 2 cores" in text and "≈ 3.9 core-hours" in text
    # an early JSON with a free-text machine line: no core count is guessed
    text = scale_tables.render_index_projection({**doc, "machine": "x86_64, 2 CPUs"})
    assert "HNSW build, minutes on – cores" in text and "≈ – core-hours" in text


def test_a_server_group_cpu_counts_as_the_measurements_own() -> None:
    """A server started in its own session is never reaped by the measuring process: its process group's
    CPU is read before it stops and added to the probe's own CPU, so it is not reported as other load."""
    import subprocess
    import sys
    import time

    from bench.core.machine import MachineProbe, tree_cpu_s

    # the burning process is a grandchild in a session of its own, as vLLM's engine under the reaper
    burn = "import time\nwhile time.process_time() < 0.8: pass\ntime.sleep(60)"
    spawn = f"subprocess.Popen([sys.executable, '-c', {burn!r}], start_new_session=True).wait()"
    middle = f"import subprocess, sys\n{spawn}"
    with MachineProbe() as probe:
        child = subprocess.Popen([sys.executable, "-c", middle], start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while (used := tree_cpu_s(child.pid)) < 0.6 and time.monotonic() < deadline:
                time.sleep(0.1)
            probe.add_own(used)
        finally:
            import os
            import signal

            for p in Path("/proc").glob("[0-9]*/stat"):  # the grandchild first: it has its own session
                try:
                    if int(p.read_text().rsplit(")", 1)[1].split()[1]) == child.pid:
                        os.kill(int(p.parent.name), signal.SIGKILL)
                except (OSError, IndexError, ValueError):
                    pass
            child.kill()
            child.wait(timeout=30)
    assert used >= 0.6
    assert probe.record()["own_cpu_s"] >= 0.6
    assert tree_cpu_s(2**22 + 12345) == 0.0  # no such group


def test_tree_sampler_counts_an_orphaned_worker() -> None:
    """A worker whose parent exits first (vLLM's engine core) is reaped by init, never by this process: the
    default count misses its CPU, the sampler (which read it while it ran) does not."""
    import subprocess
    import sys
    import time

    from bench.core.machine import MachineProbe, TreeCpuSampler

    # the middle process (the API server) exits after the worker has burned, without waiting for it
    burn = "import time\nwhile time.process_time() < 0.8: pass\ntime.sleep(2)"
    middle = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {burn!r}], start_new_session=True)\n"
        "print(p.pid, flush=True)\nstat = f'/proc/{p.pid}/stat'\n"
        "while sum(map(int, open(stat).read().rsplit(')', 1)[1].split()[11:13])) < 70: time.sleep(0.05)\n"
        "time.sleep(0.2)"
    )
    with (
        TreeCpuSampler(interval=0.05) as tree,
        MachineProbe(own_cpu=tree.total) as sampled,
        MachineProbe() as plain,
    ):
        out = subprocess.run([sys.executable, "-c", middle], capture_output=True, text=True, timeout=60)
        worker = Path(f"/proc/{int(out.stdout)}")
        deadline = time.monotonic() + 60
        while worker.exists() and " Z " not in _stat(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert time.monotonic() < deadline
    assert sampled.record()["own_cpu_s"] >= 0.7
    assert plain.record()["own_cpu_s"] < 0.5  # what the sampler adds: the orphan's 0.8 s


def _stat(proc: Path) -> str:
    try:
        return proc.joinpath("stat").read_text()
    except OSError:
        return " Z "
