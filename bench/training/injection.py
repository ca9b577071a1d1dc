"""Injection probe: did the knowledge go into the weights, whether or not the reader can get it out?

Mean token negative log-likelihood (and perplexity) of two texts, before and after fine-tuning: the trained
pages' own text and an equal amount of held-out text the adapter never saw (``bench.training.sft_views``).
Trained NLL
falling while held-out NLL stays put means the pages were stored; both falling means the model only learned
the style; held-out NLL rising is forgetting.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)


#: Tokens per batched forward of the probes (rows x padded length): short pieces and questions one at a
#: time left the matmuls too small to run near this CPU's peak (docs/performance.md).
PROBE_BATCH_TOKENS = 1024


def mean_nll(
    model: Any, tok: Any, text: str | Sequence[str], block: int, bf16: bool = False
) -> dict[str, float]:
    """Mean next-token NLL of ``text`` cut into ``block``-token pieces (each scored on its own); a list of
    texts is scored text by text (each a sequence of its own, as a training record is read). Pieces of
    similar length run together, right-padded (:data:`PROBE_BATCH_TOKENS` a forward); each piece's NLL is
    its own rows' only."""
    texts = [text] if isinstance(text, str) else list(text)
    pieces = []
    for one in texts:
        ids = tok(one, add_special_tokens=False)["input_ids"]
        pieces += [ids[i : i + block] for i in range(0, len(ids), block)]
    pieces = sorted((p for p in pieces if len(p) >= 2), key=len)
    total, count = 0.0, 0
    with _scoring(model, bf16) as device:
        for batch in _batches(pieces, len):
            nll = _row_nll(model, device, tok, batch, [(1, len(p)) for p in batch])
            total += sum(nll)
            count += sum(len(p) - 1 for p in batch)
    nll_mean = total / count if count else float("nan")
    return {
        "tokens": count,
        "nll": round(nll_mean, 4),
        "ppl": round(math.exp(nll_mean), 3) if count else float("nan"),
    }


@contextlib.contextmanager
def _scoring(model: Any, bf16: bool) -> Any:
    """no_grad, eval mode (restored after), bf16 autocast when asked; yields the model's device."""
    import torch

    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast:
            yield device
    finally:
        if was_training:
            model.train()


def _batches(rows: list[Any], length: Callable[[Any], int]) -> Any:
    """Consecutive rows (sorted by length) in batches of at most :data:`PROBE_BATCH_TOKENS` padded tokens."""
    batch: list[Any] = []
    for row in rows:
        if batch and (len(batch) + 1) * length(row) > PROBE_BATCH_TOKENS:  # sorted: row is the longest
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


def _row_nll(
    model: Any,
    device: Any,
    tok: Any,
    rows: list[list[int]],
    spans: list[tuple[int, int]],
    cache: Any = None,
    past: int = 0,
) -> list[float]:
    """Σ NLL of each row's tokens ``span[0]:span[1]`` (each predicted from the position before it), the rows
    right-padded into one forward; ``cache``: a KV cache of ``past`` tokens every row continues."""
    import torch

    width = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    x = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    mask = torch.tensor([[1] * (past + len(r)) + [0] * (width - len(r)) for r in rows], device=device)
    logits = model(
        input_ids=x, attention_mask=mask, past_key_values=cache, use_cache=cache is not None
    ).logits
    out = []
    for i, (r, (a, b)) in enumerate(zip(rows, spans, strict=True)):
        logp = torch.log_softmax(logits[i, a - 1 : b - 1].float(), dim=-1)
        target = torch.tensor(r[a:b], device=device)
        out.append(float(-logp.gather(1, target[:, None]).sum()))
    return out


def trained_texts(records: Sequence[dict[str, Any]], n_tokens: int, count: Callable[[str], int]) -> list[str]:
    """The probe's trained text for a scheduled recipe: the page records' distinct texts exactly as they were
    trained (each its own sequence: the ``titled`` prefix, the permuted order, an augmented text), pages
    interleaved in a title-hash order (every page's first text, then every page's second, ...), until about
    ``n_tokens`` tokens. Before, the probe read the first pages' lead paragraphs in dump order: with
    ``page_chunks = 1`` most of that text was never trained, so it measured forgetting, not storage."""
    by_page: defaultdict[str, list[str]] = defaultdict(list)
    for rec in records:
        text = str(rec.get("text") or rec.get("completion") or "")
        page = by_page[str(rec.get("title") or "")]
        if text and text not in page:
            page.append(text)
    order = sorted(by_page, key=lambda t: hashlib.sha256(t.encode("utf-8")).hexdigest())
    out: list[str] = []
    used = 0
    for rank in range(max((len(v) for v in by_page.values()), default=0)):
        for title in order:
            if rank < len(by_page[title]) and used < n_tokens:
                out.append(by_page[title][rank])
                used += count(by_page[title][rank])
    return out


def probe(model: Any, tok: Any, texts: dict[str, Any], block: int, bf16: bool = False) -> dict[str, Any]:
    """NLL of each named text (``trained``, ``heldout``)."""
    out = {name: mean_nll(model, tok, text, block, bf16) for name, text in texts.items() if text}
    log.info(
        "injection probe: %s",
        ", ".join(f"{k} nll {v['nll']:.3f} ({v['tokens']} tokens)" for k, v in out.items()),
    )
    return out


def summarize(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The four perplexities the FT variant reports, plus the NLLs and token counts behind them."""
    out: dict[str, Any] = {}
    for name in ("trained", "heldout"):
        if name in before and name in after:
            out[f"ppl_{name}_before"] = before[name]["ppl"]
            out[f"ppl_{name}_after"] = after[name]["ppl"]
            out[f"nll_{name}_before"] = before[name]["nll"]
            out[f"nll_{name}_after"] = after[name]["nll"]
            out[f"probe_{name}_tokens"] = after[name]["tokens"]
    return out


# --------------------------------------------------------------------------- answer-level probe

GROUPS = ("stratum", "relation")


def answer_nll(model: Any, tok: Any, prompt: str, answer: str, bf16: bool = False) -> float:
    """Teacher-forced mean NLL of ``answer``'s tokens after ``prompt`` (tokenised apart, as generation sees
    them: the prompt's tokens, then the answer's)."""
    import torch

    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tok(answer, add_special_tokens=False)["input_ids"]
    if not a_ids:
        return float("nan")
    with _scoring(model, bf16) as device:
        x = torch.tensor([p_ids + a_ids], device=device)
        labels = torch.tensor([[-100] * len(p_ids) + a_ids], device=device)
        return float(model(input_ids=x, labels=labels).loss)


def common_prefix(seqs: list[list[int]]) -> int:
    """Length of the prefix every token list in ``seqs`` shares."""
    if not seqs:
        return 0
    n = min(len(x) for x in seqs)
    first = seqs[0]
    for i in range(n):
        if any(x[i] != first[i] for x in seqs):
            return i
    return n


MIN_SHARED = 16  # tokens: below this a shared-prefix cache saves less than it costs


def answer_probe(model: Any, tok: Any, items: list[dict[str, Any]], bf16: bool = False) -> dict[str, float]:
    """{question id: NLL of its gold answer}; ``items`` hold ``id``, ``prompt`` and ``answer``.

    The prompts share the reader's instruction and worked examples (about 180 of a closed-book prompt's
    ~200 tokens): that prefix runs once, and each question runs only its own tokens on top of its KV cache
    (cropped back after each), as :func:`answer_nll` would score them one by one."""
    if not items:
        return {}
    enc = [
        (
            str(it["id"]),
            tok(it["prompt"], add_special_tokens=False)["input_ids"],
            tok(it["answer"], add_special_tokens=False)["input_ids"],
        )
        for it in items
    ]
    prefix = min(common_prefix([p for _, p, _ in enc]), min(len(p) for _, p, _ in enc) - 1)
    if prefix < MIN_SHARED:
        return {
            str(it["id"]): round(answer_nll(model, tok, it["prompt"], it["answer"], bf16), 4) for it in items
        }
    return _prefix_cached_nll(model, tok, enc, prefix, bf16)


def _prefix_cached_nll(
    model: Any, tok: Any, enc: list[tuple[str, list[int], list[int]]], prefix: int, bf16: bool
) -> dict[str, float]:
    """The shared prefix runs once; questions of similar length then run together on copies of its KV cache,
    each scored on its own answer tokens only (mean NLL, as :func:`answer_nll`)."""
    import copy

    from transformers import DynamicCache

    out: dict[str, float] = {str(qid): float("nan") for qid, _, a_ids in enc if not a_ids}
    todo = sorted((e for e in enc if e[2]), key=lambda e: len(e[1]) + len(e[2]))
    with _scoring(model, bf16) as device:
        import torch

        shared = DynamicCache()
        model(
            input_ids=torch.tensor([enc[0][1][:prefix]], device=device),
            past_key_values=shared,
            use_cache=True,
        )
        for batch in _batches(todo, lambda e: len(e[1]) - prefix + len(e[2])):
            rows = [p_ids[prefix:] + a_ids for _, p_ids, a_ids in batch]
            spans = [(len(p_ids) - prefix, len(p_ids) - prefix + len(a_ids)) for _, p_ids, a_ids in batch]
            cache = copy.deepcopy(shared)
            cache.batch_repeat_interleave(len(batch))
            sums = _row_nll(model, device, tok, rows, spans, cache, prefix)
            for (qid, _, a_ids), total in zip(batch, sums, strict=True):
                out[str(qid)] = round(total / len(a_ids), 4)
    return {str(qid): out[str(qid)] for qid, _, _ in enc}


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if not math.isnan(v)]
    return round(sum(vals) / len(vals), 4) if vals else None


def summarize_answers(
    items: list[dict[str, Any]], before: dict[str, float] | None, after: dict[str, float] | None
) -> dict[str, Any]:
    """Mean answer NLL before/after over the questions, and per ``stratum`` / ``relation`` when the question
    rows carry them (``answer_nll_by_<group>``: {value: {n, before, after}})."""
    if not items or not before or not after:
        return {}
    ids = [str(it["id"]) for it in items]
    out: dict[str, Any] = {
        "answer_nll_questions": len(ids),
        "answer_nll_before": _mean([before[i] for i in ids]),
        "answer_nll_after": _mean([after[i] for i in ids]),
    }
    for group in GROUPS:
        values = sorted({str(it[group]) for it in items if it.get(group) not in (None, "")})
        if not values:
            continue
        out[f"answer_nll_by_{group}"] = {
            v: {
                "n": len(sel := [str(it["id"]) for it in items if str(it.get(group)) == v]),
                "before": _mean([before[i] for i in sel]),
                "after": _mean([after[i] for i in sel]),
            }
            for v in values
        }
    log.info("answer probe: NLL %s -> %s", out["answer_nll_before"], out["answer_nll_after"])
    return out
