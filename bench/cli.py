"""The command bodies behind ``python -m bench <stage>`` (the parser is in :mod:`bench.__main__`).

Each command loads the config and imports its stage lazily, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.config import BenchError, Config, load_config

log = logging.getLogger("bench")


def cli_overrides(args: argparse.Namespace, extra: list[str] | None = None) -> list[str]:
    """--set items, then the shorthands (--model, --device, --batch-size, --limit) as their keys."""
    sets = [*args.overrides, *(extra or [])]
    if getattr(args, "model", None):
        sets.append(f"model.name={args.model}")
    if getattr(args, "device", None):
        sets += [f"device={args.device}", f"index.embed_device={args.device}"]
    if getattr(args, "batch_size", None) is not None:
        sets.append(f"model.batch_size={args.batch_size}")
    if args.command != "ingest" and getattr(args, "limit", None) is not None:
        sets.append(f"limit={args.limit}")
    return sets


def _inputs(cfg: Config, command: str) -> list[str]:
    """The config keys naming files this command reads (checked before anything loads)."""
    keys = {
        "ingest": ["corpus"],
        "index": ["corpus"],
        "retrieve": ["corpus"],
        "retrieve-eval": ["corpus", "questions"],
        "finetune": ["corpus"],
        "run": ["corpus", "questions"],
        "ask": ["corpus", "questions"],
        "chat": ["corpus"],
        "export": ["questions"],
    }.get(command, [])
    trains = command == "finetune" or (command == "run" and {"ft", "ft_rag"} & set(cfg.run.variants))
    if trains and cfg.finetune.scope == "question_pages":
        keys.append("questions")
    if trains and cfg.finetune.recipe in ("qa", "raft"):
        keys.append("finetune.train_questions")
    return keys


def load_cli_config(args: argparse.Namespace, extra: list[str] | None = None) -> Config:
    """Load, validate (bench.config_checks) and check the inputs, before any stage imports a model."""
    from bench.config_checks import check_inputs
    from bench.environment import resolve_device
    from bench.offline import set_offline

    cfg = resolve_device(load_config(args.config, cli_overrides(args, extra)))
    check_inputs(cfg, _inputs(cfg, args.command))
    set_offline(cfg)
    return cfg


def cmd_config(args: argparse.Namespace) -> int:
    from bench.config import config_to_toml

    cfg = load_config(args.config, cli_overrides(args))
    print(config_to_toml(cfg), end="")
    return 0


def _hint(args: argparse.Namespace) -> str:
    from bench.interactive.ask import command_hint

    return command_hint(args.config, cli_overrides(args))


def cmd_ingest(args: argparse.Namespace) -> int:
    from bench.ingest import corpus

    if args.dump is None:  # the profile's articles artifact (bench.artifacts.articles)
        if args.output or args.index or args.no_index:
            raise BenchError("ingest without DUMP builds the profile's articles (no -o/--index; see --help)")
        extra = [f"ingest.workers={args.workers}"] if args.workers is not None else []
        extra += [f"ingest.limit={args.limit}"] if args.limit is not None else []
        print(f"articles: {corpus.ensure_articles(load_cli_config(args, extra))}")
        return 0
    if not args.output:
        raise BenchError("ingest DUMP needs -o OUT.jsonl")
    cfg = load_config(args.config, cli_overrides(args))
    workers = args.workers if args.workers is not None else cfg.ingest.workers
    limit = args.limit if args.limit is not None else cfg.ingest.limit
    index = Path(args.index) if args.index else None
    stats = corpus.ingest(
        Path(args.dump),
        Path(args.output),
        workers=workers,
        limit=limit,
        index=index,
        use_index=not args.no_index,
    )
    print(stats.summary())
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    from bench.retrieval import index

    cfg = load_cli_config(args)
    hits = index.retrieve(cfg, args.query, k=args.k or cfg.index.k, mode=args.mode or cfg.index.retrieval)
    for rank, hit in enumerate(hits, 1):
        text = hit.text.replace("\n", " ")
        print(f"{rank}. [{hit.score:.4f}] {hit.title} § {hit.section or '(lead)'}\n   {text[:300]}")
    return 0


def _retrieval_record(cfg: Config) -> dict[str, object]:
    """retrieval_eval plus what README's retrieval block states: corpus, questions, k, the index's article
    and chunk counts, whether this is the default embedder, and the machine record of the eval."""
    from bench.core.machine import MachineProbe
    from bench.eval.retrieval_eval import retrieval_eval
    from bench.retrieval import index

    info = index.build_index(cfg)  # idempotent: only missing chunks are embedded; gives the counts
    with MachineProbe() as probe:
        result = retrieval_eval(cfg)
    ic, default = cfg.index, load_config(None).index
    result.update(
        corpus=cfg.corpus,
        questions=cfg.questions,
        split=cfg.split,
        k=ic.k,
        articles=info.stats.get("articles"),
        chunks=info.chunks,
        embedder_config=f"{ic.embedder}/{ic.embedder_model}",
        default_embedder=(ic.embedder, ic.embedder_model) == (default.embedder, default.embedder_model),
        machine=probe.record(),
    )
    return result


def cmd_retrieve_eval(args: argparse.Namespace) -> int:
    import json

    from bench.eval.retrieval_eval import retrieval_eval
    from bench.io import atomic_write_json

    extra = [f"corpus={args.corpus}"] if args.corpus else []
    extra += [f"questions={args.questions}"] if args.questions else []
    cfg = load_cli_config(args, extra)
    result = _retrieval_record(cfg) if args.output else retrieval_eval(cfg)
    if args.output:
        atomic_write_json(args.output, result)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from bench.eval import sweep
    from bench.tracking.track import track_sweep

    ref = Path(args.reference) if args.reference else None
    root = sweep.run_sweep(args.config, cli_overrides(args), args.name, reference=ref)
    track_sweep(
        sweep.plan(args.config, cli_overrides(args))[0]["cfg"], root
    )  # one experiment, a run per point
    print(f"sweep: {root} (render: python -m bench report --sweep {root})")
    return 0


def cmd_rag_sweep(args: argparse.Namespace) -> int:
    from bench.eval import rag_sweep
    from bench.tracking.track import track_sweep

    root = rag_sweep.run_rag_sweep(
        args.config, cli_overrides(args), args.name, variant=args.variant, report_limit=args.report_limit
    )
    track_sweep(load_config(args.config, cli_overrides(args)), root)
    print(f"rag-sweep: {root / rag_sweep.SETTINGS}")
    return 0


def cmd_dose(args: argparse.Namespace) -> int:
    import json

    from bench.eval import dose, dose_summary
    from bench.io import read_json
    from bench.reporting import dose_report

    budgets = tuple(int(b) for b in args.budgets.split(","))
    plan = dose.make_plan(
        args.config, cli_overrides(args), args.name, tuple(args.arms.split(",")), budgets,
        args.report_limit, args.seeds,
    )  # fmt: skip
    if args.dry_run:
        est = dose.estimate(plan, tuple(float(s) for s in args.s_per_step.split(",")))
        print(json.dumps(est, indent=2))
        print(dose_report.render_estimate(est))
        return 0
    if args.grid_only and args.seeds_only:
        raise BenchError("dose: --grid-only and --seeds-only exclude each other")
    path = dose_summary.run(plan, grid_only=args.grid_only, seeds_only=args.seeds_only)
    dose_report.plot(read_json(path), path.parent / dose_report.PNG)
    print(f"dose: {path} (rendered into docs/finetune.md by make report-readme)")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    import json

    from bench.interactive import ask as interactive

    cfg = load_cli_config(args)
    row = interactive.question_row(cfg, args.question, args.qid)
    names = args.variants.split(",") if args.variants else interactive.default_variants(cfg, bool(args.qid))
    bench = interactive.Workbench(cfg, _hint(args))
    try:
        result = interactive.ask(bench, row, [n.strip() for n in names if n.strip()])
    finally:
        bench.close()
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(interactive.render_text(result), end="")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from bench.interactive import chat

    return chat.run_chat(
        load_cli_config(args), args.variant, hint=_hint(args), max_new_tokens=args.max_new_tokens
    )


def cmd_report(args: argparse.Namespace) -> int:
    from bench.reporting import readme, report

    out = report.render(
        [Path(p) for p in args.run_dirs],
        Path(args.output) if args.output else None,
        samples=args.samples,
        sweeps=sorted((Path(p) for p in args.sweep), key=lambda p: p.name),
    )
    print(f"report: {out}")
    if args.readme:
        blocks = dict(spec.partition("=")[::2] for spec in args.readme_block)
        sweeps = sorted((Path(p) for p in args.sweep), key=lambda p: p.name)
        pages = [Path(d) for d in args.docs]  # docs pages get the run blocks they have markers for
        timing = Path(args.readme_timing_run) if args.readme_timing_run else None
        run, before = Path(args.readme_run), args.readme_reader_before
        for line in readme.update_readme_blocks(
            Path(args.readme), run, before, blocks, sweeps, pages=pages, timing_run=timing
        ):
            print(f"{args.readme}: {line}")
    for doc in args.docs:
        for line in readme.update_doc_blocks(Path(doc)):
            print(f"{doc}: {line}")
    return 0


def cmd_rescore(args: argparse.Namespace) -> int:
    from bench.eval import rescore

    for run_dir in rescore.run_dirs_under([Path(d) for d in args.run_dirs]):
        out = rescore.rescore(run_dir, write=not args.dry_run)
        print(f"{run_dir}: added {', '.join(out['added']) or 'nothing'}")
        for variant, after in out["after"].items():
            before = out["before"].get(variant) or {}
            cells = [f"{m} {_fmt(before.get(m))} -> {_fmt(v)}" for m, v in after.items()]
            print(f"  {variant:14s} " + "; ".join(cells))
    return 0


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def cmd_check(args: argparse.Namespace) -> int:
    from bench.reporting.check import check

    return check(Path(args.baseline), Path(args.run_dir))


def cmd_questions(args: argparse.Namespace) -> int:
    import json

    if args.action == "describe":
        from bench.io import iter_jsonl, write_jsonl
        from bench.questions import described

        rows, counts = described.describe_rows(iter_jsonl(args.questions))
        write_jsonl(Path(args.output), rows)
        print(f"{args.output}: {len(rows)} described questions; {json.dumps(dict(sorted(counts.items())))}")
        return 0
    if args.action == "generate":
        from bench.questions import factprobe

        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()] if args.kinds else factprobe.RELATIONS
        out = Path(args.output)
        rep = factprobe.generate(
            Path(args.corpus), out, kinds, args.max_per_kind, args.seed, args.train_templates
        )
        keys = ("articles_read", "facts_found", "facts_valid", "drops", "questions_per_relation_split")
        print(json.dumps({k: rep[k] for k in keys}, indent=2, ensure_ascii=False))
        print(f"{out}: {rep['questions']} questions; report {factprobe.report_path(out)}")
        return 0
    from bench.questions import factcorpus

    sel = factcorpus.select(
        Path(args.questions), args.split, args.limit, args.distractors, args.seed, args.sample
    )
    n = factcorpus.write_subset(Path(args.dump), {*sel.gold, *sel.distractors}, Path(args.output))
    print(
        f"{args.output}: {n} pages ({len(sel.gold)} pages of {sel.questions} {args.split} questions, "
        f"{len(sel.distractors)} distractors)"
    )
    return 0
