"""README tables rendered from ``results/perf/*.json`` (the perf blocks of :mod:`bench.reporting.readme`).

Each renderer takes the parsed JSON its measurement wrote and returns Markdown: a line that names the machine
and says *quiet* or *contended* (:func:`bench.core.machine.machine_line`), the table, and the sentences
whose numbers come from the same JSON. No figure here is typed by hand.
"""

from __future__ import annotations

from typing import Any

from bench.core.machine import machine_line
from bench.reporting.tables import DASH, fmt_num, table

BACKENDS = ("llamacpp", "transformers")
VARIANT_LABELS = {"base": "base", "rag": "RAG"}
RETRIEVAL_GLOB = "retrieval-faquad-*.json"
MODE_LABELS = {"dense": "dense", "sparse": "sparse (BM25)", "hybrid": "hybrid (RRF)"}
INGEST_RUNS = (
    ("bz2", "bz2 decompression only (the ceiling)"),
    ("wikiextractor", "WikiExtractor `--processes 1`"),
    ("ingest_w1", "`bench ingest`, 1 worker"),
    ("ingest_w2", "`bench ingest`, 2 workers"),
)


def fmt_int(x: Any) -> str:
    return f"{int(x):,}" if isinstance(x, int | float) else DASH


def _goal(value: Any, goal: Any) -> str:
    if not isinstance(value, int | float) or not isinstance(goal, int | float):
        return f"{fmt_num(value, 2)}"
    return f"{value:.2f} (goal ≥ {goal}: {'met' if value >= goal else '**not met**'})"


def render_ingest(doc: dict[str, Any]) -> str:
    """``results/perf/ingest.json`` (tests/perf/test_perf_ingest.py)."""
    runs, acc = doc.get("runs") or {}, doc.get("accounting") or {}
    rows = []
    for key, label in INGEST_RUNS:
        if r := runs.get(key):
            rows.append([label, fmt_num(r.get("seconds"), 2), fmt_num(r.get("peak_rss_mb"), 1)])
    ratios, goals = doc.get("ratios") or {}, doc.get("goals") or {}
    head = (
        f"`{doc.get('corpus', DASH)}`: {fmt_int(acc.get('pages_seen'))} pages, "
        f"{fmt_num(doc.get('xml_mb'), 1)} MB of XML; one pytest run, back to back; "
        f"{machine_line(doc.get('machine'))}."
    )
    lines = [head, "", table(["run", "wall s", "peak RSS MB"], rows)]
    w = "wikiextractor_over_ingest_w1"
    lines.append(
        f"WikiExtractor / ingest (1 worker) = {_goal(ratios.get(w), goals.get(w))}; 2 workers over 1 = "
        f"{_goal(ratios.get('ingest_w1_over_w2'), goals.get('ingest_w1_over_w2'))}."
    )
    if acc:
        lines.append(
            f"Of the {fmt_int(acc.get('ns0_non_redirect'))} main-namespace non-redirect pages, "
            f"{fmt_int(acc.get('articles'))} were written and {fmt_int(acc.get('empty'))} counted as empty; "
            f"{fmt_int(acc.get('redirects'))} redirects and "
            f"{fmt_int(acc.get('other_namespace'))} other-namespace pages skipped; wiki markup left in the "
            f"output: {fmt_int(acc.get('residue'))}."
        )
    if rss := runs.get("rss"):
        lines.append(
            f"Peak RSS of `bench ingest` (1 worker): {fmt_num(rss.get('prefix_mb'), 1)} MB on a 10 % prefix, "
            f"{fmt_num(rss.get('full_mb'), 1)} MB on the whole file ({fmt_num(rss.get('ratio'), 2)}×)."
        )
    return "\n".join(lines) + "\n"


def _metric(scores: dict[str, Any], prefix: str) -> Any:
    return next((v for k, v in scores.items() if k.startswith(prefix)), None)


def _is_default(doc: dict[str, Any]) -> bool:
    """Whether this JSON's embedder is the default profile's *now* (not when it was measured)."""
    from bench.config import load_config

    ic = load_config(None).index
    name = str(doc.get("embedder") or "").split("/")
    return bool(name) and name[0] == ic.embedder and name[1:2] == [ic.embedder_model.partition(":")[0]]


def _embedder(doc: dict[str, Any]) -> str:
    name = str(doc.get("embedder") or DASH)
    return f"{name} (default)" if _is_default(doc) else name


def render_retrieval(docs: list[dict[str, Any]]) -> str:
    """One ``results/perf/retrieval-faquad-*.json`` per embedder (``python -m bench retrieve-eval -o``)."""
    docs = sorted(docs, key=lambda d: (not _is_default(d), str(d.get("embedder"))))
    k = next((d.get("k") for d in docs if d.get("k")), "k")
    rows = []
    for d in docs:
        for mode, label in MODE_LABELS.items():
            s = d.get(mode) or {}
            recall, in_context = _metric(s, "recall@"), _metric(s, "answer_in_context@")
            rows.append([_embedder(d), label, fmt_num(recall), fmt_num(in_context), fmt_num(s.get("mrr"))])
    first = docs[0] if docs else {}
    what = (
        f"{fmt_int(first.get('n'))} questions of `{first.get('questions', DASH)}` (split "
        f"{first.get('split') or 'all'}) over `{first.get('corpus', DASH)}`: "
        f"{fmt_int(first.get('articles'))} articles, {fmt_int(first.get('chunks'))} chunks; "
        f"k = {k}, MRR over the top {first.get('mrr_depth', DASH)}."
    )
    header = ["embedder", "mode", f"recall@{k}", f"answer-in-context@{k}", "MRR"]
    lines = [what, "", table(header, rows, align="---:").replace("|---|---:|", "|---|---|", 1)]
    for d in docs:
        best = max(MODE_LABELS, key=lambda m: _metric(d.get(m) or {}, "answer_in_context@") or 0.0)
        lines.append(
            f"- {_embedder(d)}: best answer-in-context@{k} in {MODE_LABELS[best]} mode; "
            f"{machine_line(d.get('machine'))} (quality figures do not depend on load)."
        )
    return "\n".join(lines) + "\n"


def render_backends(doc: dict[str, Any]) -> str:
    """``results/perf/backends.json`` (tests/perf/test_perf_backends.py)."""
    info = doc.get("info") or {}
    labels = {b: f"{b} ({(info.get(b) or {}).get('quantization', DASH)})" for b in BACKENDS}
    rows = []
    for mode, label in (("closed_book", "closed book"), ("with_context", "gold context")):
        row = doc.get(mode) or {}
        for b in BACKENDS:
            r = row.get(b) or {}
            agree = fmt_num(row.get("agreement"), 2) if b == "llamacpp" else ""
            speed = [fmt_num(r.get("s_per_question"), 2), fmt_num(r.get("new_tokens_per_s"), 1)]
            rows.append([label, labels[b], *speed, agree])
    head = (
        f"{doc.get('n_questions', DASH)} questions, greedy, ≤ {doc.get('max_new_tokens', DASH)} new tokens, "
        f"both backends in one process, back to back; {machine_line(doc.get('machine'))}."
    )
    header = ["mode", "backend", "s/question", "tokens/s", "answers identical to transformers'"]
    tail = []
    for mode, label in (("closed_book", "closed book"), ("with_context", "with gold context")):
        ratio = (doc.get(mode) or {}).get("speedup_llamacpp")
        if isinstance(ratio, int | float) and ratio > 0:
            faster = "llama.cpp" if ratio > 1 else "transformers"
            tail.append(f"{label}: {faster} {max(ratio, 1 / ratio):.2f}× faster per question")
    return head + "\n\n" + table(header, rows).replace("|---|---:|", "|---|---|", 1) + (
        "\n" + "; ".join(tail) + ".\n" if tail else ""
    )  # fmt: skip


def render_batched(doc: dict[str, Any]) -> str:
    """``results/perf/batched-generation.json`` (tests/perf/test_perf_batched.py)."""
    runs = doc.get("runs") or {}
    sizes = sorted(runs, key=int)
    rows = []
    for size in sizes:
        r = runs[size]
        gen, same = r.get("generation_s") or {}, r.get("identical_to_batch1") or {}
        f1, n = r.get("f1_qstripped") or {}, doc.get("n_questions", "?")
        ident = DASH if size == sizes[0] else f"{same.get('base', '?')}/{n} / {same.get('rag', '?')}/{n}"
        times = [fmt_num(gen.get("base"), 1), fmt_num(gen.get("rag"), 1), fmt_num(r.get("wall_s"), 1)]
        rows.append([size, *times, ident, f"{fmt_num(f1.get('base'))} / {fmt_num(f1.get('rag'))}"])
    head = (
        f"{doc.get('backend', DASH)} {doc.get('dtype', '')}, {doc.get('n_questions', DASH)} questions of "
        f"`{doc.get('questions', DASH)}` ({doc.get('split') or 'all'}), base + RAG, one `bench run` per "
        f"batch size; {machine_line(doc.get('machine'))}."
    )
    header = ["`model.batch_size`", "base: Σ generation s", "RAG: Σ generation s", "run wall s",
              "answers identical to batch 1 (base / RAG)", "F1 (q. words removed) base / RAG"]  # fmt: skip
    out = head + "\n\n" + table(header, [[str(c) for c in row] for row in rows])
    one = (runs.get(sizes[0]) or {}).get("generation_s") or {} if sizes else {}
    speed = []
    for size in sizes[1:]:
        gen = runs[size].get("generation_s") or {}
        parts = [
            f"{VARIANT_LABELS[v]} {one[v] / gen[v]:.1f}×" for v in VARIANT_LABELS if one.get(v) and gen.get(v)
        ]
        speed.append(f"batch {size}: " + ", ".join(parts))
    if speed:
        out += (
            f"\nΣ generation s of batch {sizes[0]} over each batch size (> 1 = faster): "
            + "; ".join(speed)
            + ".\n"
        )
    return out


def render_install(doc: dict[str, Any]) -> str:
    """``results/perf/install.json``: ``git clone`` + ``make install`` in a fresh directory, per package cache
    (``python -m bench.perf install``; an older file named its pip cache)."""
    rows = [
        [r["cache"] if r.get("cache") else f"pip cache {r.get('pip_cache', DASH)}",
         f"`{r.get('command', 'make install')}`", fmt_num(r.get("seconds"), 0),
         str(r.get("commit", DASH))[:7]]
        for r in doc.get("runs") or []
    ]  # fmt: skip
    where = machine_line(doc["machine"]) if doc.get("machine") else "no machine record"
    lines = [
        "A fresh clone and a new `.venv`; torch from the local CPU wheel, the rest from the package index; "
        f"{where}. {doc.get('note') or ''}",
        "",
        table(["run", "command", "seconds", "commit"], rows),
    ]
    return "\n".join(lines) + "\n"
