"""Worked examples shown at the end of each ``python -m bench <stage> --help``."""

from __future__ import annotations

import argparse

FORMATTER = argparse.RawDescriptionHelpFormatter

EXAMPLES: dict[str | None, list[str]] = {
    None: [
        "make bench                                   # everything, default profile",
        "python -m bench config --profile smoke       # the effective settings as TOML",
        "python -m bench run --profile smoke --device cuda --model Qwen/Qwen2.5-0.5B-Instruct",
        "python -m bench STAGE --help                 # each stage's flags and examples",
    ],
    "ingest": [
        "python -m bench ingest ptwiki-latest-pages-articles.xml.bz2 -o articles.jsonl --workers 4",
        "python -m bench ingest dump.xml -o sample.jsonl --limit 1000",
        "python -m bench ingest --profile smoke       # the profile's articles artifact under results/",
    ],
    "index": [
        "python -m bench index --profile smoke",
        "python -m bench index --corpus articles.jsonl --set index.retrieval=dense --device cuda",
        "python -m bench index --set index.qdrant_url=http://localhost:6333   # a Qdrant server",
    ],
    "finetune": [
        "python -m bench finetune --profile smoke",
        "python -m bench finetune --set finetune.epochs=1 --set finetune.recipe=qa",
        "python -m bench finetune --device cuda --set finetune.quantization=nf4   # QLoRA",
    ],
    "config": [
        "python -m bench config",
        "python -m bench config --profile smoke --set index.k=5 > my.toml",
        "python -m bench run --profile my.toml",
    ],
    "retrieve": [
        'python -m bench retrieve "Qual é a capital de Portugal?" -k 5 --mode hybrid',
    ],
    "retrieve-eval": [
        "python -m bench retrieve-eval --profile smoke -o retrieval.json",
    ],
    "run": [
        "python -m bench run --profile smoke",
        "python -m bench run --set run.variants=base,rag --limit 20 -o results/runs/try",
        "python -m bench run --model ./my-model --device cuda --batch-size 16",
        "torchrun --nproc_per_node 8 -m bench run --profile study   # one share per GPU (docs/scale.md)",
        "python -m bench run --profile study --shard 0/4 -o results/runs/big   # then bench merge",
    ],
    "merge": [
        "python -m bench merge results/runs/big   # after --shard 0/4 .. 3/4 into the same directory",
        "python -m bench merge node-a/runs/big node-b/runs/big -o results/runs/big",
    ],
    "sweep": [
        "python -m bench sweep --name ft-curve --set finetune.epochs=0,1,3",
    ],
    "rag-sweep": [
        "python -m bench rag-sweep --profile default   # k x order x page-only: selection, then report",
    ],
    "ask": [
        'python -m bench ask "Quem escreveu Os Lusíadas?" --variants base,rag',
        "python -m bench ask --qid 4918ff59e83343b88c1fd3a204f55a3b --json",
    ],
    "chat": [
        "python -m bench chat --variant rag",
    ],
    "questions": [
        "python -m bench questions generate --corpus dump.xml.bz2 -o questions/mine.jsonl",
        "python -m bench questions corpus --questions questions/mine.jsonl --dump dump.xml.bz2 -o mine.xml",
    ],
    "report": [
        "python -m bench report                       # every run under results/runs",
        "python -m bench report results/runs/smoke -o smoke.md",
    ],
    "judge": [
        "python -m bench judge results/runs/open --set judge.base_url=http://127.0.0.1:8000/v1 "
        "--set judge.model=NAME",
    ],
    "export": [
        "python -m bench export --profile smoke -o export/smoke   # questions: HF dataset + lm-eval tasks",
        "python -m bench export --profile smoke --run results/runs/smoke -o export/smoke   # + its answers",
    ],
    "check": [
        "python -m bench check --baseline results/baseline/smoke.json results/runs/smoke",
    ],
}


def epilog(command: str | None) -> str:
    lines = EXAMPLES.get(command, [])
    return "examples:\n" + "\n".join(f"  {line}" for line in lines) if lines else ""
