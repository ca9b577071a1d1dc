"""``python -m bench judge RUN_DIR``: LLM-judged metrics of a run's answers (bench/eval/judge.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.cli import load_cli_config


def cmd_judge(args: argparse.Namespace) -> int:
    from bench.eval.judge import judge_run

    summary = judge_run(load_cli_config(args, ["judge.enabled=true"]), Path(args.run_dir))
    calls, agree = summary["calls"], summary["agreement"]
    print(f"{args.run_dir}: {calls['verdicts']} verdicts ({calls['cached']} cached, {calls['asked']} asked, "
          f"{calls['transport_errors']} transport errors)")  # fmt: skip
    for variant, by_metric in summary["metrics"].items():
        for metric, cell in by_metric.items():
            mean = "-" if cell["mean"] is None else f"{cell['mean']:.3f}"
            print(f"  {variant:10s} {metric:20s} {mean} (n {cell['n']}, unparseable {cell['unparseable']})")
    if agree["n"]:
        kappa = "-" if agree["kappa"] is None else f"{agree['kappa']:.3f}"
        print(f"  agreement with EM (short answers): {agree['rate']:.3f}, kappa {kappa}, n {agree['n']}")
    return 0


def add_judge(add: Any) -> None:
    """The ``judge`` sub-command (``add``: __main__'s sub-command adder)."""
    p = add("judge", cmd_judge, "judge a run's answers with an OpenAI-compatible LLM through ragas ([judge])")
    p.add_argument(
        "run_dir", help="run directory (its answers.jsonl); writes judge.jsonl and judge.json there"
    )
