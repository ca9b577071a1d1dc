"""Injection probe: did the knowledge go into the weights, whether or not the reader can get it out?

Mean token negative log-likelihood (and perplexity) of two texts, before and after fine-tuning: the trained
pages' own text and an equal amount of held-out text the adapter never saw (``bench.training.sft_views``).
Trained NLL
falling while held-out NLL stays put means the pages were stored; both falling means the model only learned
the style; held-out NLL rising is forgetting.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any

log = logging.getLogger(__name__)


def mean_nll(model: Any, tok: Any, text: str, block: int, bf16: bool = False) -> dict[str, float]:
    """Mean next-token NLL of ``text`` cut into ``block``-token pieces (each scored on its own)."""
    import torch

    ids = tok(text, add_special_tokens=False)["input_ids"]
    total, count = 0.0, 0
    device = next(model.parameters()).device
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    was_training = model.training
    model.eval()
    with torch.no_grad(), autocast:
        for i in range(0, len(ids), block):
            piece = ids[i : i + block]
            if len(piece) < 2:
                continue
            x = torch.tensor([piece], device=device)
            loss = model(input_ids=x, labels=x).loss
            total += float(loss) * (len(piece) - 1)
            count += len(piece) - 1
    if was_training:
        model.train()
    nll = total / count if count else float("nan")
    return {"tokens": count, "nll": round(nll, 4), "ppl": round(math.exp(nll), 3) if count else float("nan")}


def probe(model: Any, tok: Any, texts: dict[str, str], block: int, bf16: bool = False) -> dict[str, Any]:
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
