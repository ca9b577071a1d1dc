"""Where `make bench`'s time goes, from the committed default run's own records and a few counts made here:

* the stage wall times (``make_bench.json``) split into what each stage's records account for (training
  time, the variants' generation and retrieval time) and the rest (model loads, probes, engine starts,
  merges, scoring);
* padding in the training batches at the default settings: the default recipe's records in training order,
  tokenised as the trainer does, batched as it batches them (sequentially, padded to the longest), against
  length-grouped batches and packing;
* prompt tokens per variant: the reader's instruction and worked examples, the passages, the question.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.config import Config
from bench.io import answers_file, iter_jsonl


def tokenizer(cfg: Config) -> Any:
    """The generator's tokenizer (the assembled Hugging Face folder's)."""
    from transformers import AutoTokenizer

    from bench.generation import models

    return AutoTokenizer.from_pretrained(str(models.ensure_hf_model(cfg)))


def probe_cost(cfg: Config, compare: int = 50) -> dict[str, Any]:
    """Seconds of the fine-tuning stage's "before" probe on the base model (page perplexities and the
    answer NLL of every evaluated question), as ``FinetuneRecipe.setup`` (bench.training.finetune) runs
    it; and, on the first ``compare`` questions, the shared-prefix answer probe against scoring each whole
    prompt."""
    import time

    from bench.generation import models
    from bench.training import injection, sft_qa, sft_recipes

    model, tok = models.load_model(cfg, for_training=True, quantization="none")
    use_chat = tok.chat_template is not None
    data = sft_recipes.build_training_data(cfg, tok, use_chat=use_chat)
    bf16, block = cfg.finetune.bf16, cfg.finetune.max_length
    t0 = time.perf_counter()
    pages = injection.probe(model, tok, data.probe_texts, block, bf16)
    t1 = time.perf_counter()
    items = sft_qa.answer_probe_items(cfg, tok, use_chat)
    fast = injection.answer_probe(model, tok, items, bf16)
    t2 = time.perf_counter()
    sub = items[:compare]  # the previous path, one whole prompt per question, on the first questions
    slow = {str(it["id"]): injection.answer_nll(model, tok, it["prompt"], it["answer"], bf16) for it in sub}
    t3 = time.perf_counter()
    t4 = time.perf_counter()
    injection.answer_probe(model, tok, sub, bf16)
    t5 = time.perf_counter()
    return {
        "page_probe_s": round(t1 - t0, 1),
        "page_probe_tokens": sum(v["tokens"] for v in pages.values()),
        "answer_probe_s": round(t2 - t1, 1),
        "answer_probe_questions": len(items),
        "compared_questions": len(sub),
        "one_by_one_s": round(t3 - t2, 1),
        "shared_prefix_s": round(t5 - t4, 1),
        "max_abs_nll_difference": round(max((abs(fast[k] - v) for k, v in slow.items()), default=0.0), 4),
        "runs_per_adapter": 2,  # before training and after it
    }


def padded_tokens(lengths: Sequence[int], batch: int) -> int:
    """Token slots computed when consecutive ``batch``-sized groups are padded to their longest."""
    return sum(
        max(lengths[i : i + batch]) * len(lengths[i : i + batch]) for i in range(0, len(lengths), batch)
    )


def grouped_padded_tokens(lengths: Sequence[int], batch: int, window: int = 64) -> int:
    """The same, with each ``window`` consecutive records sorted by length before batching
    (``finetune.length_window``: the order within a window changes, the schedule's order across windows
    stays)."""
    from bench.training.batching import window_order

    return padded_tokens([lengths[i] for i in window_order(lengths, window)], batch)


def padding_report(lengths: Sequence[int], batch: int, max_length: int) -> dict[str, Any]:
    """Real tokens against the slots each batching computes: sequential (today), length-grouped, packed."""
    real = sum(lengths)
    seq = padded_tokens(lengths, batch)
    grouped = grouped_padded_tokens(lengths, batch)
    packed = math.ceil(real / (batch * max_length)) * batch * max_length
    return {
        "records": len(lengths),
        "batch": batch,
        "max_length": max_length,
        "real_tokens": real,
        "mean_length": round(real / max(1, len(lengths)), 1),
        "at_max_length": sum(1 for n in lengths if n >= max_length),
        "slots": {"sequential": seq, "grouped_64": grouped, "packed": packed},
        "pad_fraction": {
            k: round(1 - real / v, 4) if v else None
            for k, v in {"sequential": seq, "grouped_64": grouped, "packed": packed}.items()
        },
    }


def training_padding(cfg: Config) -> dict[str, Any]:
    """:func:`padding_report` of the default recipe's records (tokenizer only: no model is loaded)."""
    from bench.training import batching, sft_recipes

    tok = tokenizer(cfg)
    use_chat = tok.chat_template is not None
    data = sft_recipes.build_training_data(cfg, tok, use_chat=use_chat)  # the built order
    texts = [batching.record_text(r) for r in data.train]
    ft = cfg.finetune
    out = padding_report(batching.record_lengths(tok, texts, ft.max_length), ft.batch_size, ft.max_length)
    return {**out, "length_window": ft.length_window}


def prompt_parts(
    tok: Any, reader: str, fewshot: int, question: str, passages: Sequence[str]
) -> dict[str, Any]:
    """Token ids of one prompt (chat template applied) and the token counts of its parts: the worked
    examples, the passages, and the instruction with the question and the template's framing."""
    from bench.core.prompts import build_messages

    def ids(msgs: list[dict[str, str]]) -> list[int]:
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return list(tok(text, add_special_tokens=False)["input_ids"])

    full = ids(build_messages(question, passages, reader, fewshot))
    no_examples = len(ids(build_messages(question, passages, reader, 0)))
    bare = len(ids(build_messages(question, (), reader, 0)))
    return {
        "ids": full,
        "total": len(full),
        "examples": len(full) - no_examples,
        "passages": no_examples - bare,
        "instruction_and_question": bare,
    }


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def prompt_lengths(cfg: Config, answers: Path, per_variant: int = 50) -> dict[str, dict[str, float]]:
    """Mean :func:`prompt_parts` of the first ``per_variant`` answers of each generating variant, and the
    prefix each prompt shares with the one before it (what vLLM's prefix cache can skip)."""
    from bench.core.prompts import format_passage

    tok = tokenizer(cfg)
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in iter_jsonl(answers):
        lat = r.get("latency") or {}
        if not lat.get("new_tokens") or len(rows[r["variant"]]) >= per_variant:
            continue
        passages = [
            format_passage(p["text"], p.get("title", ""), p.get("section", "")) for p in r["passages"]
        ]
        parts = prompt_parts(tok, cfg.model.reader, cfg.model.fewshot, r["question"], passages)
        prev = rows[r["variant"]][-1]["ids"] if rows[r["variant"]] else []
        parts["shared_prefix"] = _common_prefix(prev, parts["ids"]) if prev else 0
        rows[r["variant"]].append(parts)
    out = {}
    for v, ps in rows.items():
        keys = ("total", "examples", "passages", "instruction_and_question")
        out[v] = {k: round(sum(p[k] for p in ps) / len(ps), 1) for k in keys}
        later = [p["shared_prefix"] for p in ps[1:]]
        out[v]["shared_prefix"] = round(sum(later) / len(later), 1) if later else 0.0
        out[v]["n"] = len(ps)
    return out


def run_accounting(answers: Path) -> dict[str, dict[str, float]]:
    """Per variant: questions, Σ generation s, Σ retrieval s and Σ new tokens from ``answers.jsonl``."""
    out: dict[str, dict[str, float]] = {}
    for r in iter_jsonl(answers):
        lat = r.get("latency") or {}
        v = out.setdefault(r["variant"], {"n": 0, "generation_s": 0.0, "retrieval_s": 0.0, "new_tokens": 0})
        v["n"] += 1
        v["generation_s"] += (lat.get("generation_ms") or 0.0) / 1000
        v["retrieval_s"] += (lat.get("retrieval_ms") or 0.0) / 1000
        v["new_tokens"] += lat.get("new_tokens") or 0
    return {k: {kk: round(vv, 1) for kk, vv in v.items()} for k, v in out.items()}


def _batched_wall(v: dict[str, Any], summary: dict[str, Any]) -> None:
    """A variant answered in flight: each answer's generation time includes its wait behind the others, so
    their sum overstates the stage. Its generation seconds become the batch's wall (questions / the measured
    questions per second) plus its batch-1 latency probe (probed questions x their median latency)."""
    tp, probe = summary.get("throughput") or {}, summary.get("single_latency_ms") or {}
    if not (tp.get("questions_per_s") and int(tp.get("batch") or 1) > 1):
        return
    v["summed_generation_s"] = v["generation_s"]
    v["batch_wall_s"] = round(float(tp["n"]) / float(tp["questions_per_s"]), 1)
    v["latency_probe_s"] = round(float(probe.get("n") or 0) * float(probe.get("p50") or 0) / 1000, 1)
    v["generation_s"] = round(v["batch_wall_s"] + v["latency_probe_s"], 1)


def stage_accounting(run_dir: Path) -> dict[str, Any]:
    """The committed run's stage seconds, and what its records account for inside each."""
    timing = json.loads((run_dir / "make_bench.json").read_text(encoding="utf-8"))
    scores = json.loads((run_dir / "scores.json").read_text(encoding="utf-8"))
    ft = (scores.get("costs") or {}).get("finetune") or {}
    variants = run_accounting(answers_file(run_dir))
    for name, v in variants.items():  # batched variants: their requests overlap, so the wall, not the sum
        _batched_wall(v, (scores.get("variants") or {}).get(name) or {})
    gen = sum(v["generation_s"] for v in variants.values())
    ret = sum(v["retrieval_s"] for v in variants.values())
    stages = timing["stages_s"]
    return {
        "cpu_model": (scores.get("env") or {}).get("cpu_model"),
        "stages_s": stages,
        "total_s": timing["total_s"],
        "finetune": {
            "wall_s": stages.get("finetune"),
            "train_s": ft.get("train_time_s"),
            "in_process_s": ft.get("wall_time_s"),
            "steps": ft.get("steps"),
            "tokens_per_s": ft.get("tokens_per_s"),
            "outside_training_s": round(
                float(ft.get("wall_time_s") or 0) - float(ft.get("train_time_s") or 0), 1
            ),
        },
        "run": {
            "wall_s": stages.get("run"),
            "generation_s": round(gen, 1),
            "retrieval_s": round(ret, 1),
            "unaccounted_s": round(float(stages.get("run") or 0) - gen - ret, 1),
        },
        "variants": variants,
    }


def prefill_floor(
    prompts: dict[str, dict[str, float]], variants: dict[str, dict[str, float]], limits_doc: dict[str, Any]
) -> dict[str, Any] | None:
    """The fewest seconds the run's prompts take at this CPU's measured prefill rate (``limits_doc``: a
    ``bench.perf limits`` record): per variant, its questions x (mean prompt - mean prefix shared with the
    previous prompt, which the prefix cache skips) tokens; decoding and engine starts come on top."""
    rate = ((limits_doc.get("stages") or {}).get("generation") or {}).get("prefill_tokens_per_s")
    if not rate:
        return None
    out = {}
    for name, p in sorted(prompts.items()):
        n = (variants.get(name) or {}).get("n") or 0
        tokens = n * max(0.0, float(p.get("total") or 0) - float(p.get("shared_prefix") or 0))
        out[name] = {"questions": n, "tokens": round(tokens), "seconds": round(tokens / rate, 1)}
    return {
        "cpu_model": limits_doc.get("cpu_model"),
        "prefill_tokens_per_s": rate,
        "prefill_fraction_of_peak": ((limits_doc.get("fractions") or {}).get("prefill") or {}).get(
            "fraction"
        ),
        "variants": out,
        "total_s": round(sum(v["seconds"] for v in out.values()), 1),
    }
