"""Are two adapters the same? ``python -m bench.training.compare A B -o results/perf/ft-repro.json``.

Compares two adapter folders (``adapter_model.safetensors`` + ``train_metadata.json``) tensor by tensor:
bitwise equality, the largest absolute difference, and whether they were trained under the same adapter key.
Used to show that two fresh trainings of one key give one adapter on the real model (docs/finetune.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.core.machine import cpu_model
from bench.io import atomic_write_json

WEIGHTS = "adapter_model.safetensors"
METADATA = "train_metadata.json"


def _meta(folder: Path) -> dict[str, Any]:
    path = Path(folder) / METADATA
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def compare(a: Path, b: Path) -> dict[str, Any]:
    """Tensor-by-tensor comparison of the adapters in folders ``a`` and ``b``."""
    from safetensors.torch import load_file

    wa, wb = load_file(str(Path(a) / WEIGHTS)), load_file(str(Path(b) / WEIGHTS))
    shared = sorted(set(wa) & set(wb))
    diffs = {k: float((wa[k].float() - wb[k].float()).abs().max()) for k in shared}
    equal = [k for k in shared if wa[k].dtype == wb[k].dtype and bool((wa[k] == wb[k]).all())]
    ma, mb = _meta(a), _meta(b)
    return {
        "a": {
            "dir": str(a),
            "key": Path(a).name,
            "snapshot_of": ma.get("snapshot_of"),
            "steps": ma.get("steps"),
        },
        "b": {
            "dir": str(b),
            "key": Path(b).name,
            "snapshot_of": mb.get("snapshot_of"),
            "steps": mb.get("steps"),
        },
        "same_key": ma.get("hash_key") == mb.get("hash_key") and bool(ma.get("hash_key")),
        "tensors": len(shared),
        "only_in_one": sorted(set(wa) ^ set(wb)),
        "bitwise_equal_tensors": len(equal),
        "bitwise_equal": len(equal) == len(shared) and not set(wa) ^ set(wb) and bool(shared),
        "max_abs_diff": max(diffs.values(), default=None),
        "threads": [ma.get("threads"), mb.get("threads")],
        "answer_nll_after": [
            (ma.get("probe") or {}).get("answer_nll_after"),
            (mb.get("probe") or {}).get("answer_nll_after"),
        ],
        "cpu": cpu_model(),
    }


def render(result: dict[str, Any]) -> str:
    """One paragraph for docs/finetune.md (the ``ft-repro`` block)."""
    a, b = result["a"], result["b"]

    def how(side: dict[str, Any]) -> str:
        snap = side.get("snapshot_of")
        if snap:
            return f"saved as a snapshot of the {snap.get('epochs')}-epoch run"
        return "trained alone, from scratch"

    verdict = "bitwise equal" if result["bitwise_equal"] else f"max |Δ| {result['max_abs_diff']}"
    return (
        f"Adapter `{a['key']}` ({how(a)}, {a['steps']} steps) and the same key trained again ({how(b)}, "
        f"{b['steps']} steps, another results folder): {result['bitwise_equal_tensors']} of "
        f"{result['tensors']} LoRA tensors bitwise equal — **{verdict}**; answer NLL after training "
        f"{result['answer_nll_after'][0]} vs {result['answer_nll_after'][1]}; threads {result['threads']}.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    result = compare(args.a, args.b)
    atomic_write_json(args.output, result)
    print(render(result), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
