"""Command line: ``python -m bench <stage> ...``.

One sub-command per stage; each imports its module lazily.
"""

from __future__ import annotations

import argparse
import errno
import importlib.metadata
import logging
import signal
import sys
import threading
from collections.abc import Callable

from bench.cli import (
    cmd_ask,
    cmd_chat,
    cmd_check,
    cmd_config,
    cmd_dose,
    cmd_ingest,
    cmd_questions,
    cmd_rag_sweep,
    cmd_report,
    cmd_rescore,
    cmd_retrieve,
    cmd_retrieve_eval,
    cmd_sweep,
)
from bench.cli_dist import cmd_export, cmd_finetune, cmd_index, cmd_merge, cmd_run
from bench.cli_help import FORMATTER as _FORMATTER
from bench.cli_help import epilog as _epilog
from bench.cli_judge import add_judge
from bench.config import BenchError, profiles
from bench.config_checks import DEVICES
from bench.environment import configure_env

log = logging.getLogger("bench")


def _version() -> str:
    try:
        return importlib.metadata.version("ptwiki-bench")
    except importlib.metadata.PackageNotFoundError:  # a plain checkout on PYTHONPATH
        from bench import __version__

        return __version__


def _config_args(p: argparse.ArgumentParser, limit: bool = True) -> None:
    """--profile, --set and the lm-eval-harness-style shorthands (each one a --set key)."""
    g = p.add_argument_group("configuration")
    names = ", ".join(profiles())
    g.add_argument("--profile", "--config", dest="config", help=f"profile name ({names}) or a TOML file")
    g.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set index.k=5 or --set variants=base,rag (repeatable); "
        "`python -m bench config` lists the keys",
    )
    g.add_argument("--model", metavar="NAME", help="= --set model.name=NAME (registry name, HF id or path)")
    g.add_argument(
        "--device", metavar="D", help="= --set device=D --set index.embed_device=D (" + DEVICES + ")"
    )
    g.add_argument("--batch-size", "--batch_size", type=int, metavar="N", help="= --set model.batch_size=N")
    if limit:
        g.add_argument("--limit", type=int, metavar="N", help="= --set limit=N (first N questions; 0 = all)")


def _output(p: argparse.ArgumentParser, help_: str, required: bool = False) -> None:
    """The one output flag: -o/--output (--out and --output_path are hidden aliases)."""
    p.add_argument("-o", "--output", dest="output", default=None, required=required, help=help_)
    p.add_argument("--out", "--output_path", dest="output", default=None, help=argparse.SUPPRESS)


class _Adder:
    """Adds one sub-command: description, examples epilog, -v, and the config flags where it reads them."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    def __call__(
        self, name: str, fn: Callable[[argparse.Namespace], int], help_: str, config: bool = True
    ) -> argparse.ArgumentParser:
        p = self.sub.add_parser(
            name, help=help_, description=help_, epilog=_epilog(name), formatter_class=_FORMATTER
        )
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        if config:
            _config_args(p, limit=name not in {"ingest"})
        p.set_defaults(fn=fn)
        return p


def _add_data_stages(add: _Adder) -> None:
    p = add(
        "ingest",
        cmd_ingest,
        "stream a MediaWiki XML dump (.xml, .xml.bz2, .xml.gz) into articles JSONL; without DUMP, build the "
        "profile's articles artifact (every corpus file, ingest.limit) that index and fine-tune read",
    )
    p.add_argument("dump", nargs="?", default=None, help="dump file (default: the profile's corpus)")
    _output(p, "articles JSONL to write (required with DUMP); replaced only when the whole dump was read")
    p.add_argument("--workers", type=int, default=None, help="parallel cleaning processes")
    p.add_argument("--limit", type=int, default=None, help="stop after N articles (= --set ingest.limit=N)")
    p.add_argument(
        "--index",
        default=None,
        help="multistream index (offset:page_id:title lines); default: X-index.txt.bz2 beside X.xml.bz2",
    )
    p.add_argument("--no-index", action="store_true", help="read a multistream dump as one stream")
    p = add("index", cmd_index, "chunk, embed and index a corpus (dump or articles JSONL) into Qdrant")
    p.add_argument("--corpus", default=None, help="dump or articles JSONL (default: config corpus)")
    p.add_argument("--shard", default=None, metavar="I/N", help="embed articles I::N only (a Qdrant server)")
    p = add("finetune", cmd_finetune, "build training data from the corpus and train a (Q)LoRA adapter")
    p.add_argument("--dry-run", action="store_true", help="write the training records (-o FILE) only")
    _output(p, "--dry-run: JSONL of the exact training records")
    add("config", cmd_config, "print the effective config (profile + --set + shorthands) as TOML")


def _add_retrieval(add: _Adder) -> None:
    p = add("retrieve", cmd_retrieve, "print the top chunks for a question")
    p.add_argument("query", help="question text")
    p.add_argument("-k", type=int, default=0, help="number of chunks (default: config index.k)")
    p.add_argument("--mode", choices=["dense", "sparse", "hybrid"], default=None)
    p = add("retrieve-eval", cmd_retrieve_eval, "recall@k, answer-in-context@k and MRR per retrieval mode")
    p.add_argument("--corpus", default=None, help="dump or articles JSONL (default: config corpus)")
    p.add_argument("--questions", default=None, help="question JSONL (default: config questions)")
    _output(p, "write the JSON here too")


def _add_eval(add: _Adder) -> None:
    p = add("run", cmd_run, "run the question set through every variant; writes answers.jsonl + scores.json")
    _output(p, "run directory (default: results/runs/<run-id>)")
    p.add_argument("--shard", default=None, metavar="I/N", help="answer questions I::N only (docs/scale.md)")
    p.add_argument(
        "--adopt-from",
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="a committed run whose answers of unchanged variants are reused (repeatable; docs/harness.md)",
    )
    p.add_argument(
        "--longform-pages",
        type=int,
        default=0,
        metavar="N",
        help="then the run's long-form twin (run.longform_pages = N) on the same engines (docs/harness.md)",
    )
    p.add_argument(
        "--longform-output", default=None, help="the twin's run directory (default: OUTPUT-longform)"
    )
    p = add("merge", cmd_merge, "merge the shards of a sharded run into answers.jsonl + scores.json")
    p.add_argument("run_dirs", nargs="+", help="run directories holding the shard caches (cache/*.shard-*)")
    _output(p, "run directory to write (default: the first RUN_DIR)")
    p = add("sweep", cmd_sweep, "a grid over config keys (--set finetune.epochs=1,3,10): one run per point")
    p.add_argument("--name", required=True, help="sweep name: results/sweeps/NAME/")
    p.add_argument("--reference", default=None, help="a run of this profile: its base/RAG answers are reused")
    p = add("rag-sweep", cmd_rag_sweep, "the RAG reading settings (k, order, page only): choose, then report")
    p.add_argument("--name", default="rag-settings", help="sweep name: results/sweeps/NAME/")
    p.add_argument("--variant", default="rag", choices=["rag", "ft_rag"], help="the variant tuned")
    p.add_argument("--report-limit", type=int, default=120, help="report-subset questions per point")
    p = add(
        "dose", cmd_dose, "closed-book EM vs training budget: recipes x 1..32 exposures, chosen, reported"
    )
    p.add_argument("--name", default="ft-dose", help="sweep name: results/sweeps/NAME/")
    p.add_argument("--arms", default="mixed,aug,pit-aug", help="recipes (bench/eval/dose.py ARMS)")
    p.add_argument("--budgets", default="1,2,4,8,16,32", help="exposures per evaluated page")
    p.add_argument("--report-limit", type=int, default=120, help="report-subset questions")
    p.add_argument("--seeds", type=int, default=3, help="trainings at the chosen point")
    p.add_argument(
        "--grid-only", action="store_true",
        help="only the points of --arms, then a partial dose.json (no seeds); resumable on another machine",
    )  # fmt: skip
    p.add_argument(
        "--seeds-only", action="store_true",
        help="only the extra seeds at the point chosen among the finished recipes, then a partial dose.json",
    )  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="records, steps and CPU hours only; trains nothing")
    p.add_argument("--s-per-step", default="3,5", help="--dry-run: seconds per optimizer step to price")
    p = add("ask", cmd_ask, "one question through several variants, side by side (cached index/adapter only)")
    p.add_argument("question", nargs="?", default=None, help="question text (optional with --qid)")
    p.add_argument("--variants", default=None, help="comma-separated (default: the profile's run.variants)")
    p.add_argument("--qid", default=None, help="a question id from the profile's question file (gold shown)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p = add("chat", cmd_chat, "interactive chat with one variant, streamed (cached index/adapter only)")
    p.add_argument("--variant", default="rag", help="variant to start with (/variant NAME switches)")
    p.add_argument("--max-new-tokens", type=int, default=0, help="answer length (0: model.max_new_tokens)")


def _add_questions(add: _Adder) -> None:
    p = add("questions", cmd_questions, "fact-probe questions from a dump (questions/README.md)", False)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    g = actions.add_parser("generate", help="lead-sentence facts → question rows + .report.json beside them")
    g.add_argument("--corpus", required=True, help="dump (.xml/.xml.bz2) or articles JSONL")
    _output(g, "question JSONL to write", required=True)
    g.add_argument("--kinds", default="", help="comma-separated relations (default: all)")
    g.add_argument("--max-per-kind", type=int, default=0, help="at most N facts per relation (0 = all)")
    g.add_argument("--seed", type=int, default=0, help="split and template choice")
    g.add_argument(
        "--train-templates", choices=["one", "all"], default="one", help="all: every template for train facts"
    )
    d = actions.add_parser("describe", help="the questions without the subject's name (harder retrieval)")
    d.add_argument("--questions", required=True, help="question JSONL (from questions generate)")
    _output(d, "question JSONL to write", required=True)
    c = actions.add_parser("corpus", help="the dump pages a question subset needs, plus distractors, as XML")
    c.add_argument("--questions", required=True, help="question JSONL (from questions generate)")
    c.add_argument("--dump", required=True, help="the dump the questions were generated from")
    _output(c, "XML dump to write (.xml or .xml.bz2)", required=True)
    c.add_argument("--split", default="dev", help="evaluated split (as the profile's split)")
    c.add_argument("--limit", type=int, default=0, help="N questions of the split (profile's limit)")
    c.add_argument(
        "--sample", choices=["first", "stratified"], default="first", help="which N (profile's sample key)"
    )
    c.add_argument("--distractors", type=int, default=0, help="pages of train facts added as distractors")
    c.add_argument("--seed", type=int, default=0, help="distractor choice and the stratified order")


def _add_report(add: _Adder) -> None:
    p = add("report", cmd_report, "render results/REPORT.md (+ plot) from scores.json files", False)
    p.add_argument("run_dirs", nargs="*", help="run directories (default: all under results/runs)")
    _output(p, "Markdown file (default: results/REPORT.md)")
    p.add_argument("--readme", default=None, help="also regenerate the table between the results markers")
    p.add_argument("--readme-run", default="results/runs/default", help="run whose table goes in --readme")
    p.add_argument(
        "--readme-timing-run",
        default=None,
        help="run whose make_bench.json fills the timing block (default: --readme-run)",
    )
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
        help="a run with the previous reader (DIR, or DIR=AFTER_DIR to compare with another run than "
        "--readme-run): --readme also gets its before → after table (reader markers)",
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
    p = add(
        "rescore", cmd_rescore, "recompute scores.json (and answers.jsonl metrics) from cached answers", False
    )
    p.add_argument("run_dirs", nargs="+", help="run directories, or folders holding them (results/sweeps/X)")
    p.add_argument("--dry-run", action="store_true", help="print the before/after headlines only")
    p = add("export", cmd_export, "the question set (+ a run's answers) as a HF dataset and lm-eval tasks")
    p.add_argument("--run", default=None, help="a run directory of this profile: its answers.jsonl too")
    _output(p, "folder to write: OUT/hf (datasets), OUT/lm_eval (task folder)", required=True)
    p = add(
        "check", cmd_check, "compare a run with a baseline; exit 1 on a regression of a stable metric", False
    )
    p.add_argument("--baseline", required=True, help="baseline scores.json")
    p.add_argument("run_dir", help="run directory (or its scores.json)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="ptwiki-bench: RAG vs fine-tuning vs both on Portuguese Wikipedia.",
        epilog=_epilog(None),
        formatter_class=_FORMATTER,
    )
    parser.add_argument("--version", action="version", version=f"ptwiki-bench {_version()}")
    add = _Adder(parser)
    _add_data_stages(add)
    _add_retrieval(add)
    _add_eval(add)
    _add_questions(add)
    _add_report(add)
    add_judge(add)
    return parser


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``kill``, ``timeout``): unwinds like Ctrl-C, so every ``finally`` runs and every
    child process the bench started (vLLM servers) is stopped before the process exits."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    configure_env()
    try:
        return int(args.fn(args))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"error: disk full{where} ({exc.strerror}): nothing was replaced; outputs written before are "
              "kept; free space and rerun the same command to resume", file=sys.stderr)  # fmt: skip
        return 2
    except KeyboardInterrupt as exc:
        print("interrupted: finished items are kept; rerun the same command to resume", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
