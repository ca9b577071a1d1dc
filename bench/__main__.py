"""Command line: ``python -m bench <stage> ...``.

One sub-command per stage; each imports its module lazily.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from bench.cli import (
    cmd_ask,
    cmd_chat,
    cmd_check,
    cmd_finetune,
    cmd_index,
    cmd_ingest,
    cmd_questions,
    cmd_report,
    cmd_retrieve,
    cmd_retrieve_eval,
    cmd_run,
    cmd_sweep,
)
from bench.config import BenchError

log = logging.getLogger("bench")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        "--profile",
        dest="config",
        default=None,
        help="profile name (default, smoke, full) or a TOML file; default: bench/configs/default.toml",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set index.k=5 or --set variants=base,rag (repeatable)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="ptwiki-bench: RAG vs fine-tuning vs both on Portuguese Wikipedia.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        _common(p)
        p.set_defaults(fn=fn)
        return p

    p = add(
        "ingest",
        cmd_ingest,
        "stream a MediaWiki XML dump (.xml, .xml.bz2, .xml.gz) into articles JSONL; without DUMP, build the "
        "profile's articles artifact (every corpus file, ingest.limit) that index and fine-tune read",
    )
    p.add_argument("dump", nargs="?", default=None, help="dump file (default: the profile's corpus)")
    p.add_argument("-o", "--output", default=None, help="articles JSONL to write (required with DUMP)")
    p.add_argument("--workers", type=int, default=None, help="parallel cleaning processes")
    p.add_argument("--limit", type=int, default=None, help="stop after N articles")
    p.add_argument(
        "--index",
        default=None,
        help="multistream index (offset:page_id:title lines); default: X-index.txt.bz2 beside X.xml.bz2",
    )
    p.add_argument("--no-index", action="store_true", help="read a multistream dump as one stream")

    p = add("index", cmd_index, "chunk, embed and index a corpus (dump or articles JSONL) into Qdrant")
    p.add_argument("--corpus", default=None, help="dump or articles JSONL (default: config corpus)")

    p = add("retrieve", cmd_retrieve, "print the top chunks for a question")
    p.add_argument("query", help="question text")
    p.add_argument("-k", type=int, default=0, help="number of chunks (default: config index.k)")
    p.add_argument("--mode", choices=["dense", "sparse", "hybrid"], default=None)

    p = add("retrieve-eval", cmd_retrieve_eval, "recall@k, answer-in-context@k and MRR per retrieval mode")
    p.add_argument("--corpus", default=None)
    p.add_argument("--questions", default=None)
    p.add_argument("-o", "--output", default=None, help="write the JSON here too")

    p = add("finetune", cmd_finetune, "build training data from the corpus and train a (Q)LoRA adapter")
    p.add_argument(
        "--dry-run", action="store_true", help="write the training records (-o FILE), train nothing"
    )
    p.add_argument("-o", "--output", default=None, help="--dry-run: JSONL of the exact training records")

    p = add("run", cmd_run, "run the question set through every variant; writes answers.jsonl + scores.json")
    p.add_argument("--out", default=None, help="run directory (default: results/runs/<run-id>)")

    p = add("sweep", cmd_sweep, "a grid over config keys (--set finetune.epochs=1,3,10): one run per point")
    p.add_argument("--name", required=True, help="sweep name: results/sweeps/NAME/")
    p.add_argument(
        "--reference", default=None, help="a run of this profile whose base/RAG answers are reused"
    )

    p = add("questions", cmd_questions, "generate fact-probe questions from a dump (questions/README.md)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    g = actions.add_parser("generate", help="lead-sentence facts → question rows + .report.json beside them")
    g.add_argument("--corpus", required=True, help="dump (.xml/.xml.bz2) or articles JSONL")
    g.add_argument("-o", "--output", required=True, help="question JSONL to write")
    g.add_argument("--kinds", default="", help="comma-separated relations (default: all)")
    g.add_argument("--max-per-kind", type=int, default=0, help="at most N facts per relation (0 = all)")
    g.add_argument("--seed", type=int, default=0, help="split and template choice")
    g.add_argument(
        "--train-templates", choices=["one", "all"], default="one", help="all: every template for train facts"
    )
    c = actions.add_parser("corpus", help="the dump pages a question subset needs, plus distractors, as XML")
    c.add_argument("--questions", required=True, help="question JSONL (from questions generate)")
    c.add_argument("--dump", required=True, help="the dump the questions were generated from")
    c.add_argument("-o", "--output", required=True, help="XML dump to write (.xml or .xml.bz2)")
    c.add_argument("--split", default="dev", help="evaluated split (as the profile's split)")
    c.add_argument("--limit", type=int, default=0, help="first N questions of the split (profile's limit)")
    c.add_argument("--distractors", type=int, default=0, help="pages of train facts added as distractors")
    c.add_argument("--seed", type=int, default=0, help="distractor choice")

    p = add("ask", cmd_ask, "one question through several variants, side by side (cached index/adapter only)")
    p.add_argument("question", nargs="?", default=None, help="question text (optional with --qid)")
    p.add_argument("--variants", default=None, help="comma-separated (default: the profile's run.variants)")
    p.add_argument("--qid", default=None, help="a question id from the profile's question file (gold shown)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")

    p = add(
        "chat", cmd_chat, "interactive chat with one variant, answers streamed (cached index/adapter only)"
    )
    p.add_argument("--variant", default="rag", help="variant to start with (/variant NAME switches)")
    p.add_argument(
        "--max-new-tokens", type=int, default=0, help="answer length (default: model.max_new_tokens)"
    )

    p = add("report", cmd_report, "render results/REPORT.md (+ plot) from scores.json files")
    p.add_argument("run_dirs", nargs="*", help="run directories (default: all under results/runs)")
    p.add_argument("-o", "--output", default=None, help="Markdown file (default: results/REPORT.md)")
    p.add_argument("--readme", default=None, help="also regenerate the table between the results markers")
    p.add_argument("--readme-run", default="results/runs/default", help="run whose table goes in --readme")
    p.add_argument(
        "--readme-block",
        action="append",
        default=[],
        metavar="NAME=RUN_DIR",
        help="with --readme: render that run's tables between <!-- NAME:start/end --> (repeatable)",
    )
    p.add_argument(
        "--readme-reader-before",
        default=None,
        help="a run with the previous reader: --readme also gets its before → after table (reader markers)",
    )
    p.add_argument(
        "--docs",
        action="append",
        default=[],
        metavar="FILE",
        help="a docs page whose <!-- NAME:start/end --> perf blocks are rendered from results/perf "
        "(repeatable)",
    )
    p.add_argument("--samples", type=int, default=8, help="questions per run in 'Answers side by side'")
    p.add_argument("--sweep", action="append", default=[], help="a sweep directory: its learning curve")

    p = add("check", cmd_check, "compare a run with a baseline; exit 1 on a regression of a stable metric")
    p.add_argument("--baseline", required=True, help="baseline scores.json")
    p.add_argument("run_dir", help="run directory (or its scores.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return int(args.fn(args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished items are kept; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
