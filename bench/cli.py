"""The command bodies behind ``python -m bench <stage>`` (the parser is in :mod:`bench.__main__`).

Each command loads the config and imports its stage lazily, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench.config import BenchError, Config, load_config

log = logging.getLogger("bench")


def _cfg(args: argparse.Namespace) -> Config:
    return load_config(args.config, args.overrides)


def cmd_ingest(args: argparse.Namespace) -> int:
    from bench.ingest import corpus

    cfg = _cfg(args)
    if args.dump is None:  # the profile's articles artifact (bench.artifacts.articles)
        if args.output or args.limit is not None or args.index or args.no_index:
            raise BenchError("ingest without DUMP builds the profile's articles (use --set ingest.limit=N)")
        if args.workers is not None:
            cfg = load_config(args.config, [*args.overrides, f"ingest.workers={args.workers}"])
        print(f"articles: {corpus.ensure_articles(cfg)}")
        return 0
    if not args.output:
        raise BenchError("ingest DUMP needs -o OUT.jsonl")
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


def cmd_index(args: argparse.Namespace) -> int:
    from bench.retrieval import index

    cfg = _cfg(args)
    if args.corpus:
        cfg = load_config(args.config, [*args.overrides, f"corpus={args.corpus}"])
    info = index.build_index(cfg)
    print(info.summary())
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    from bench.retrieval import index

    cfg = _cfg(args)
    hits = index.retrieve(cfg, args.query, k=args.k or cfg.index.k, mode=args.mode or cfg.index.retrieval)
    for rank, hit in enumerate(hits, 1):
        text = hit.text.replace("\n", " ")
        print(f"{rank}. [{hit.score:.4f}] {hit.title} § {hit.section or '(lead)'}\n   {text[:300]}")
    return 0


def _retrieval_record(cfg: Config) -> dict[str, object]:
    """retrieval_eval plus what README's retrieval block states: corpus, questions, k, the index's article
    and chunk counts, whether this is the default embedder, and the machine record of the eval."""
    from bench.reporting.machine import MachineProbe
    from bench.retrieval import index

    info = index.build_index(cfg)  # idempotent: only missing chunks are embedded; gives the counts
    with MachineProbe() as probe:
        result = index.retrieval_eval(cfg)
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

    from bench.io import atomic_write_json
    from bench.retrieval import index

    extra = [f"corpus={args.corpus}"] if args.corpus else []
    extra += [f"questions={args.questions}"] if args.questions else []
    cfg = load_config(args.config, [*args.overrides, *extra])
    result = _retrieval_record(cfg) if args.output else index.retrieval_eval(cfg)
    if args.output:
        atomic_write_json(args.output, result)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from bench.training import finetune

    if args.dry_run or args.output:
        import json

        from bench.training import sft_recipes

        if not (args.dry_run and args.output):
            raise BenchError("finetune --dry-run needs -o FILE (and -o only goes with --dry-run)")
        summary = sft_recipes.dry_run(_cfg(args), Path(args.output))
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return 0
    out = finetune.run_finetune(_cfg(args))
    print(f"adapter: {out}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bench.eval import runner

    run_dir = runner.run(_cfg(args), out_dir=Path(args.out) if args.out else None)
    print(f"results: {run_dir}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from bench.eval import sweep

    ref = Path(args.reference) if args.reference else None
    root = sweep.run_sweep(args.config, args.overrides, args.name, reference=ref)
    print(f"sweep: {root} (render: python -m bench report --sweep {root})")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    import json

    from bench.interactive import ask as interactive

    cfg = _cfg(args)
    row = interactive.question_row(cfg, args.question, args.qid)
    names = args.variants.split(",") if args.variants else interactive.default_variants(cfg, bool(args.qid))
    bench = interactive.Workbench(cfg, interactive.command_hint(args.config, args.overrides))
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
    from bench.interactive import ask as interactive
    from bench.interactive import chat

    hint = interactive.command_hint(args.config, args.overrides)
    return chat.run_chat(_cfg(args), args.variant, hint=hint, max_new_tokens=args.max_new_tokens)


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
        for line in readme.update_readme_blocks(
            Path(args.readme), Path(args.readme_run), args.readme_reader_before, blocks, sweeps
        ):
            print(f"{args.readme}: {line}")
    for doc in args.docs:
        for line in readme.update_doc_blocks(Path(doc)):
            print(f"{doc}: {line}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bench.reporting.check import check

    return check(Path(args.baseline), Path(args.run_dir))


def cmd_questions(args: argparse.Namespace) -> int:
    import json

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

    sel = factcorpus.select(Path(args.questions), args.split, args.limit, args.distractors, args.seed)
    n = factcorpus.write_subset(Path(args.dump), {*sel.gold, *sel.distractors}, Path(args.output))
    print(
        f"{args.output}: {n} pages ({len(sel.gold)} pages of {sel.questions} {args.split} questions, "
        f"{len(sel.distractors)} distractors)"
    )
    return 0
