"""A committed run resumes on a fresh clone: its committed answers stand in for the uncommitted cache.

A run's answer cache (``cache/*.jsonl``) stays on the machine that answered, but ``answers.jsonl`` is
committed and ``scores.json`` records every variant's key (``variant_keys``, bench.eval.runstate.variant_key:
model, prompt, index, adapter, code). Before answering, each variant whose key today equals its committed key
gets its committed rows written back into the cache (rows with an error are left to be answered again), with
the resources and generator record the committed run measured. So adding a variant or retraining the adapter
re-answers only what changed, on any machine.

Adopted answers were decoded, and their latency and memory measured, where the committed run ran: each such
variant's summary carries ``adopted`` (rows, git commit, CPU, created), and the report's metadata names them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bench.config import Config
from bench.eval.answers import RESOURCE_FIELDS
from bench.eval.runstate import AnswerCache, question_hash
from bench.eval.variants import VariantSpec
from bench.io import answers_file, iter_jsonl, read_json

log = logging.getLogger(__name__)


def cache_row(key: str, qhash: str, row: dict[str, Any]) -> dict[str, Any]:
    """The cache row an ``answers.jsonl`` row was rendered from (bench.eval.answers.answer_row inverted)."""
    lat = row.get("latency") or {}
    generation = {
        "new_tokens": lat.get("new_tokens") or 0,
        "ttft_ms": lat.get("ttft_ms") or 0.0,
        "total_ms": lat.get("generation_ms") or 0.0,
        "finish_reason": row.get("finish_reason") or "stop",
        "batch_size": lat.get("batch_size") or 1,
    }
    out = {
        "key": key,
        "question_id": row["question_id"],
        "qhash": qhash,
        "answer": row["answer"],
        "hits": row.get("retrieved") or [],
        "passages": row.get("passages") or [],
        "retrieval_ms": lat.get("retrieval_ms") or 0.0,
        "generation": generation,
        "error": row.get("error"),
        "adopted": True,
    }
    if row.get("counterfactual"):
        out["counterfactual"] = row["counterfactual"]
    return out


def _matching(
    cfg: Config, scores: dict[str, Any], keys: dict[str, str], pending: dict[str, Any]
) -> list[str]:
    """The variants with questions to answer whose committed key is today's, when the committed run read
    the same question file (a question's hash covers its gold context, which answers.jsonl does not keep)."""
    from bench.weights import cached_sha256

    sha = ((scores.get("datasets") or {}).get("questions") or {}).get("sha256")
    if sha is None or sha != cached_sha256(cfg, cfg.path(cfg.questions)):
        return []
    committed = scores.get("variant_keys") or {}
    return [n for n, todo in pending.items() if todo and committed.get(n) == keys[n]]


def _adopt_rows(
    answers: Path, specs: dict[str, VariantSpec], keys: dict[str, str], by_id: dict[str, Any], caches: Any
) -> dict[str, int]:
    adopted = dict.fromkeys(by_id, 0)
    for row in iter_jsonl(answers):
        name = str(row.get("variant"))
        q = by_id.get(name, {}).get(str(row.get("question_id")))
        if (
            q is None
            or row.get("error")
            or [row.get("question"), row.get("answers")] != [q["question"], q["answers"]]
        ):
            continue
        caches[name].append(cache_row(keys[name], question_hash(specs[name], q), row))
        adopted[name] += 1
    return {n: c for n, c in adopted.items() if c}


def committed(
    cfg: Config,
    sources: list[Path],
    specs: dict[str, VariantSpec],
    keys: dict[str, str],
    pending: dict[str, list[dict[str, Any]]],
    caches: dict[str, AnswerCache],
    resources: dict[str, Any],
    info: dict[str, Any],
) -> dict[str, int]:
    """Write the committed answers (run directories ``sources``, in order) of the pending questions of every
    unchanged variant into ``caches``, the committed resources into ``resources`` and generator records into
    ``info``; returns the rows adopted per variant and drops them from ``pending``."""
    total: dict[str, int] = {}
    for source in sources:
        scores = _scores(source)
        names = _matching(cfg, scores, keys, pending) if scores else []
        by_id = {n: {str(q["id"]): q for q in pending[n]} for n in names}
        adopted = _adopt_rows(answers_file(source), specs, keys, by_id, caches) if names else {}
        env = scores.get("env") or {}
        origin = {"run": str(source), "git_commit": env.get("git_commit"), "cpu_model": env.get("cpu_model")}
        for name, n in adopted.items():
            summary = (scores.get("variants") or {}).get(name) or {}
            before = resources.get(name) or {}
            resources[name] = {
                "key": keys[name],
                **{f: summary[f] for f in RESOURCE_FIELDS if summary.get(f) is not None},
                "adopted": [*(before.get("adopted") or []), *_origins(summary, origin, scores, n)],
            }
            if (gen := (env.get("generator") or {}).get(name)) is not None:
                info.setdefault(name, gen)
            spec, key = specs[name], keys[name]
            pending[name] = [
                q for q in pending[name] if caches[name].get(key, q["id"], question_hash(spec, q)) is None
            ]
            total[name] = total.get(name, 0) + n
            log.info(
                "%s: %d committed answers adopted from %s (%s, %s)",
                name,
                n,
                source,
                str(origin["git_commit"])[:12],
                origin["cpu_model"],
            )
    return total


def _origins(summary: dict[str, Any], origin: dict[str, Any], scores: dict[str, Any], n: int) -> list[Any]:
    """Where ``n`` rows adopted from a run were answered: the origins it had adopted them from itself, and
    the run for the rest."""
    earlier = [dict(o) for o in summary.get("adopted") or [] if isinstance(o, dict)]
    own = n - sum(int(o.get("rows") or 0) for o in earlier)
    return [*earlier, *([{**origin, "created": scores.get("created"), "rows": own}] if own > 0 else [])]


def _scores(run_dir: Path) -> dict[str, Any]:
    """A committed run's scores.json, or {} when the directory holds no finished run."""
    path = run_dir / "scores.json"
    if not (path.exists() and answers_file(run_dir).exists()):
        return {}
    scores = read_json(path)
    return scores if isinstance(scores, dict) else {}


def carry_costs(costs: dict[str, Any], artifacts: dict[str, str], sources: list[Path]) -> dict[str, Any]:
    """The build cost of an artifact this machine did not build (its answers were adopted, so the index or
    adapter was never opened here), from the first committed run that records it under the same key."""
    out = dict(costs)
    for stage, key in artifacts.items():
        if out.get(stage):
            continue
        for source in sources:
            got = (_scores(source).get("costs") or {}).get(stage)
            if isinstance(got, dict) and got.get("key") == key:
                out[stage] = got
                break
    return out
