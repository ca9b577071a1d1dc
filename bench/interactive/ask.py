"""``bench ask``: one question through several variants, printed side by side (or as one JSON object).

:class:`Workbench` opens what the variants need — the profile's cached index, its cached LoRA adapter, the
generators — once and on demand, for ``ask`` and for ``bench chat`` (:mod:`bench.interactive.chat`). It
builds nothing:
when the index or the adapter is missing it raises a :class:`BenchError` naming the command that builds it.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import BenchError, Config
from bench.eval.variants import VARIANTS, VariantSpec, build_variants, get_spec

MODEL_GENERATORS = ("base", "ft")  # VariantSpec.generator values that need a loaded model
MIN_COLUMN = 30  # narrower than this per variant: stacked blocks instead of columns
SEP = " │ "


def command_hint(profile: str | None, overrides: list[str]) -> str:
    """`` --profile P --set k=v`` as typed, so an error can name the exact command that builds an artifact."""
    parts = ["--profile", profile] if profile else []
    for item in overrides:
        parts += ["--set", item]
    return "".join(f" {shlex.quote(p)}" for p in parts)


def open_cached_index(cfg: Config, hint: str = "") -> Any:
    """The retriever over the profile's index, only if it was built and is complete (never builds it)."""
    from bench.retrieval.index import Retriever, index_embedder, index_identity, open_store

    path, sig, _files = index_identity(cfg)
    manifest_path = path / "manifest.json"
    build = f"build it with `python -m bench index{hint}`"
    if not manifest_path.exists():
        raise BenchError(f"no index for corpus {cfg.corpus} at {path} (manifest.json missing): {build}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    store = open_store(cfg, path)
    emb, full_sig, dim = index_embedder(cfg, sig)
    if manifest.get("signature") != sig or manifest.get("store") != store.location:
        store.close()
        raise BenchError(f"index {manifest_path} was built with other settings: {build}")
    store.open(full_sig, dim)
    points = (manifest.get("counts") or {}).get("points")
    if store.count() != points:
        store.close()
        raise BenchError(f"index {path} is incomplete ({points} points expected): {build}")
    return Retriever(cfg, store, emb, path)


def find_cached_adapter(cfg: Config, hint: str = "") -> Path:
    """The profile's trained LoRA adapter folder, only if training finished (never trains one)."""
    from bench.training.finetune import METADATA, adapter_dir

    path = adapter_dir(cfg)
    if not (path / METADATA).exists():
        raise BenchError(
            f"no fine-tuned adapter for this profile at {path}: "
            f"build it with `python -m bench finetune{hint}` (or leave out the ft variants)"
        )
    return path


def _make_generators(cfg: Config, adapter: Path | None) -> dict[str, Any]:
    from bench.generation.registry import make_generators

    return dict(make_generators(cfg, adapter))


@dataclass
class Loaders:
    """How :class:`Workbench` opens things; tests inject fakes."""

    open_index: Callable[[Config, str], Any] = open_cached_index
    find_adapter: Callable[[Config, str], Path] = find_cached_adapter
    make_generators: Callable[[Config, Path | None], dict[str, Any]] = _make_generators


class Workbench:
    """The index, adapter and generators of one profile, opened once and on demand; builds nothing."""

    def __init__(self, cfg: Config, hint: str = "", loaders: Loaders | None = None) -> None:
        self.cfg, self.hint, self.loaders = cfg, hint, loaders or Loaders()
        self.generators: dict[str, Any] = {}
        self.retriever: Any = None
        self.adapter: Path | None = None

    def check(self, names: list[str]) -> list[VariantSpec]:
        """Specs of ``names``; missing artifacts are reported before any model is loaded."""
        specs = [get_spec(n) for n in names]
        if any(s.uses_adapter for s in specs) and self.adapter is None:
            self.adapter = self.loaders.find_adapter(self.cfg, self.hint)
        if any(s.uses_retrieval for s in specs) and self.retriever is None:
            self.retriever = self.loaders.open_index(self.cfg, self.hint)
        return specs

    def generators_for(self, specs: list[VariantSpec]) -> dict[str, Any]:
        need = {s.generator for s in specs if s.generator in MODEL_GENERATORS}
        if need - set(self.generators):
            self.close_generators()  # reload with the adapter: base and ft share one copy of the weights
            self.generators = self.loaders.make_generators(self.cfg, self.adapter)
        return self.generators

    def variants(self, names: list[str], k: int | None = None) -> dict[str, Any]:
        specs = self.check(names)
        cfg = self.cfg
        if k is not None:
            cfg = dataclasses.replace(cfg, index=dataclasses.replace(cfg.index, k=k))
        return build_variants(cfg, names, self.generators_for(specs), self.retriever)

    def close_generators(self) -> None:
        for gen in self.generators.values():
            gen.close()
        self.generators = {}

    def close(self) -> None:
        self.close_generators()
        if self.retriever is not None and hasattr(self.retriever, "close"):
            self.retriever.close()
        self.retriever = None


def default_variants(cfg: Config, has_gold: bool) -> list[str]:
    """The profile's variants, less those that need a gold context when the question has none."""
    names = [n for n in cfg.run.variants if n in VARIANTS]
    return [n for n in names if has_gold or VARIANTS[n].context != "gold"]


def question_row(cfg: Config, question: str | None, qid: str | None) -> dict[str, Any]:
    """A free question, or (``qid``) a row of the profile's question file, with its gold answers/context."""
    if qid is None:
        if not question or not question.strip():
            raise BenchError("give a question (or --qid ID from the profile's question file)")
        return {"id": "ask", "question": question.strip(), "answers": []}
    from bench.questions.load import load_questions

    rows = load_questions(dataclasses.replace(cfg, split="", limit=0))
    row = next((r for r in rows if r["id"] == qid), None)
    if row is None:
        raise BenchError(f"{cfg.path(cfg.questions)}: no question with id {qid!r}")
    return {**row, "question": question.strip() if question else row["question"]}


def _entry(name: str, result: Any, error: str | None, row: dict[str, Any]) -> dict[str, Any]:
    from bench.core import metrics

    gen = getattr(result, "generation", None)
    total_ms = float(getattr(gen, "total_ms", 0.0) or 0.0)
    new_tokens = int(getattr(gen, "new_tokens", 0) or 0)
    answer = str(getattr(result, "answer", "") or "")
    error = error or getattr(gen, "error", None)
    entry: dict[str, Any] = {
        "variant": name,
        "description": VARIANTS[name].description,
        "answer": answer,
        "error": error,
        "latency": {
            "retrieval_ms": round(float(getattr(result, "retrieval_ms", 0.0) or 0.0), 1),
            "generation_ms": round(total_ms, 1),
            "ttft_ms": round(float(getattr(gen, "ttft_ms", 0.0) or 0.0), 1),
            "new_tokens": new_tokens,
            "tokens_per_s": round(new_tokens / (total_ms / 1000.0), 2) if total_ms > 0 else None,
        },
        "lang": metrics.answer_language(answer) if answer and not error else "und",
        "sources": [
            {key: getattr(h, key, None) for key in ("chunk_id", "title", "section", "score")}
            for h in getattr(result, "hits", None) or []
        ],
    }
    for extra in ("passages", "truncated"):  # per-answer fields of newer variants, when present
        if hasattr(result, extra):
            entry[extra] = getattr(result, extra)
    if row.get("answers"):
        entry["scores"] = {
            "exact_match": metrics.exact_match(answer, row["answers"]),
            "f1": round(metrics.token_f1(answer, row["answers"]), 3),
            "contains": metrics.contains(answer, row["answers"]),
        }
    return entry


def ask(bench: Workbench, row: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Answer ``row`` with each variant in ``names``; a variant that raises is recorded, not fatal."""
    gold = [n for n in names if n in VARIANTS and VARIANTS[n].context == "gold"]
    if gold and not row.get("context"):
        raise BenchError(f"variant {gold[0]} needs the gold context: ask with --qid ID instead")
    variants = bench.variants(names)
    out: dict[str, Any] = {"question": row["question"], "question_id": row.get("id"), "variants": []}
    if row.get("answers"):
        out["gold"] = list(row["answers"])
    for name in names:
        t0 = time.perf_counter()
        try:
            result, error = variants[name].answer(row), None
        except Exception as exc:  # one failing variant must not hide the others' answers
            result, error = None, f"{type(exc).__name__}: {exc}"
        entry = _entry(name, result, error, row)
        entry["latency"]["wall_ms"] = round((time.perf_counter() - t0) * 1000.0, 1)
        out["variants"].append(entry)
    return out


def _fmt_ms(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:.0f} ms"


def _block(entry: dict[str, Any], width: int) -> list[str]:
    """The lines of one variant's answer, wrapped to ``width``."""
    lat = entry["latency"]

    def wrap(text: str, indent: str = "") -> list[str]:
        return textwrap.wrap(text, width, subsequent_indent=indent) or [""]

    lines = [f"{entry['variant']}", "─" * min(width, 24)]
    lines += wrap(entry["answer"] or "(empty answer)")
    if entry["error"]:
        lines += wrap(f"error: {entry['error']}")
    lines.append("")
    if lat["retrieval_ms"]:
        lines += wrap(f"retrieval {_fmt_ms(lat['retrieval_ms'])}")
    tps = lat["tokens_per_s"]
    lines += wrap(
        f"generation {_fmt_ms(lat['generation_ms'])}, {lat['new_tokens']} tokens"
        + (f", {tps:.1f} tok/s" if tps else "")
    )
    lines += wrap(f"language: {entry['lang']}")
    if scores := entry.get("scores"):
        lines += wrap(
            f"EM {scores['exact_match']:.0f} · F1 {scores['f1']:.2f} · cont. {scores['contains']:.0f}"
        )
    if entry["sources"]:
        lines.append("sources:")
        for i, s in enumerate(entry["sources"], 1):
            where = " § ".join(str(p) for p in (s.get("title"), s.get("section")) if p)
            score = s.get("score")
            lines += wrap(f"{i}. {where}" + (f" ({score:.3f})" if isinstance(score, float) else ""), "   ")
    return lines


def render_text(result: dict[str, Any], width: int | None = None) -> str:
    """Variants side by side in columns when the terminal is wide enough, stacked blocks otherwise."""
    width = width or shutil.get_terminal_size((100, 24)).columns
    head = textwrap.wrap(f"Pergunta: {result['question']}", width)
    if gold := result.get("gold"):
        head += textwrap.wrap("gold: " + " | ".join(gold), width)
    entries = result["variants"]
    n = max(1, len(entries))
    col = (width - len(SEP) * (n - 1)) // n
    if col < MIN_COLUMN:
        body: list[str] = []
        for e in entries:
            body += ["", *_block(e, width)]
        return "\n".join([*head, *body]) + "\n"
    blocks = [_block(e, col) for e in entries]
    rows = max(len(b) for b in blocks)
    lines = [
        SEP.join(b[i].ljust(col) if i < len(b) else " " * col for b in blocks).rstrip() for i in range(rows)
    ]
    return "\n".join([*head, "", *lines]) + "\n"
