"""README blocks: the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``, rendered from committed
JSON only (``python -m bench report --readme README.md``; Makefile ``report-readme``).

Two kinds of block: the run blocks (``results``, ``baselines``, ``timing``, ``reader``, ``costs``,
``learning-curve`` and ``--readme-block NAME=RUN``), rendered from a run's ``scores.json``, a sweep or
``make_bench.json``; and the perf blocks of :data:`PERF_BLOCKS`, each rendered from ``results/perf/`` only
when its JSON is there (renderers in :mod:`bench.reporting.perf_tables`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.config import BenchError
from bench.io import atomic_write_text, read_json
from bench.reporting import limits_tables, perf_tables, scale_projection, scale_tables
from bench.reporting.costs import render_costs, render_ft_arm
from bench.reporting.curves import render_train_speed
from bench.reporting.diagnostics_tables import render_diagnostics
from bench.reporting.report import run_label
from bench.reporting.tables import render_baseline_checks, render_detectable, render_groups, render_table
from bench.reporting.vllm_tables import render_backend_run, render_vllm
from bench.training.compare import render as render_repro

RUN_BLOCKS = ("results", "baselines", "groups", "timing", "reader", "costs", "ft-arm", "learning-curve")
# Run blocks named on the command line (`--readme-block NAME=RUN_DIR`, Makefile report-readme): a docs page
# may hold them without being refused as a block no renderer knows.
NAMED_RUN_BLOCKS = (
    "facts", "faquad", "default", "study-rag", "study-large", "rag-arm", "described", "described-large",
    "longform", "corpus-size", "corpus-size-described",
)  # fmt: skip
# + error attribution and faithfulness
DIAGNOSED_BLOCKS = ("study-rag", "study-large", "rag-arm", "described", "described-large")
PERF_DIR = Path("results") / "perf"  # relative: against the current directory (the checkout)


def _one(name: str, render: Callable[[dict[str, Any]], str]) -> Callable[[Path], tuple[Path, str] | None]:
    def load(perf_dir: Path) -> tuple[Path, str] | None:
        src = perf_dir / name
        return (src, render(read_json(src))) if src.exists() else None

    return load


def _retrieval(perf_dir: Path) -> tuple[Path, str] | None:
    files = sorted(perf_dir.glob(perf_tables.RETRIEVAL_GLOB))
    if not files:
        return None
    return perf_dir / perf_tables.RETRIEVAL_GLOB, perf_tables.render_retrieval([read_json(f) for f in files])


def _fidelity(perf_dir: Path) -> tuple[Path, str] | None:
    files = sorted(perf_dir.glob("e5-torch-fidelity-*.json"))
    if not files:
        return None
    docs = {f.stem.removeprefix("e5-torch-fidelity-"): read_json(f) for f in files}
    return perf_dir / "e5-torch-fidelity-*.json", scale_tables.render_fidelity(docs)


def _limits(details: bool) -> Callable[[Path], tuple[Path, str] | None]:
    def load(perf_dir: Path) -> tuple[Path, str] | None:
        files = sorted(perf_dir.glob(limits_tables.LIMITS_GLOB))
        if not files:
            return None
        docs = [read_json(f) for f in files]
        body = limits_tables.render_limits_details(docs) if details else limits_tables.render_limits(docs)
        return perf_dir / limits_tables.LIMITS_GLOB, body

    return load


def _make_bench(perf_dir: Path) -> tuple[Path, str] | None:
    files = sorted(perf_dir.glob(limits_tables.MAKE_BENCH_GLOB))
    if not files:
        return None
    return perf_dir / limits_tables.MAKE_BENCH_GLOB, limits_tables.render_make_bench(
        [limits_tables.with_family(read_json(f), f) for f in files]
    )


def _op_profile(perf_dir: Path) -> tuple[Path, str] | None:
    files = sorted(perf_dir.glob(limits_tables.OP_PROFILE_GLOB))
    if not files:
        return None
    body = limits_tables.render_op_profile([read_json(f) for f in files])
    return perf_dir / limits_tables.OP_PROFILE_GLOB, body


def _ft(summary: bool) -> Callable[[Path], tuple[Path, str] | None]:
    def load(perf_dir: Path) -> tuple[Path, str] | None:
        from bench.reporting import ft_verdict

        root = perf_dir.parent / ft_verdict.SWEEP
        if not (root / "sweep.json").exists():
            return None
        return root / "sweep.json", (ft_verdict.render_summary if summary else ft_verdict.render)(root)

    return load


def _rag_settings(perf_dir: Path) -> tuple[Path, str] | None:
    from bench.reporting import rag_settings

    root = perf_dir.parent / rag_settings.SWEEP
    found = root / rag_settings.SETTINGS
    return (found, rag_settings.render(root)) if found.exists() else None


def _dose(short: bool) -> Callable[[Path], tuple[Path, str] | None]:
    def load(perf_dir: Path) -> tuple[Path, str] | None:
        from bench.io import read_json
        from bench.reporting import dose_report

        found = perf_dir.parent / dose_report.SWEEP / dose_report.DOSE
        if not found.exists():
            return None
        if short:
            return found, dose_report.summary(read_json(found))
        png = found.parent / dose_report.PNG
        return found, dose_report.render(read_json(found), f"../results/{dose_report.SWEEP}/{png.name}")

    return load


# block name -> (results/perf directory -> (source, body), or None when its JSON is absent)
PERF_BLOCKS: dict[str, Callable[[Path], tuple[Path, str] | None]] = {
    "ingest": _one("ingest.json", perf_tables.render_ingest),
    "retrieval": _retrieval,
    "backends": _one("backends.json", perf_tables.render_backends),
    "vllm": _one("vllm.json", render_vllm),
    "backend-run": _one("backend-run.json", render_backend_run),
    "batched": _one("batched-generation.json", perf_tables.render_batched),
    "train-speed": _one("train-speed.json", render_train_speed),
    "install": _one("install.json", perf_tables.render_install),
    "embed-speed": _one("e5-torch-speed.json", scale_tables.render_embed_speed),
    "full-profile": _one("full-profile.json", scale_tables.render_full_profile),
    "ptwiki-projection": scale_projection.load,  # docs/scale.md: three perf files
    "multistream": _one("multistream.json", scale_tables.render_multistream),
    "e5-fidelity": _fidelity,
    "index-1m": _one("index-1m.json", scale_tables.render_index_1m),
    "index-10m": _one("index-1m.json", scale_tables.render_index_projection),
    "ft-verdict": _ft(summary=False),  # results/sweeps/ft-recipes (make ft-curves), not a perf file
    "ft-summary": _ft(summary=True),
    "rag-settings": _rag_settings,  # results/sweeps/rag-settings (bench rag-sweep)
    "ft-dose": _dose(short=False),  # results/sweeps/ft-dose (make ft-dose)
    "dose-summary": _dose(short=True),  # README's "What fine-tuning buys"
    "ft-repro": _one("ft-repro.json", render_repro),  # python -m bench.training.compare A B -o ...
    "limits": _limits(details=False),  # python -m bench.perf limits (make perf): one row per machine
    "limits-details": _limits(details=True),
    "time-breakdown": _one(
        "time-breakdown.json", limits_tables.render_time_breakdown
    ),  # bench.perf breakdown
    "train-ab": _one("train-ab.json", limits_tables.render_train_ab),  # python -m bench.perf train-ab
    "train-ab-code": _one("train-ab-code.json", limits_tables.render_train_ab),  # the same, code paths
    "make-bench": _make_bench,  # bench.perf.make_bench: one results/perf/make-bench-<cpu>.json per CPU
    "op-profile": _op_profile,  # python -m bench.perf op-profile: per op family, one file per CPU
}


def block_names(text: str) -> list[str]:
    """The NAMEs of every ``<!-- NAME:start -->`` marker in ``text``, in order."""
    import re

    return re.findall(r"<!-- ([A-Za-z0-9_-]+):start -->", text)


def render_run_summary(scores: dict[str, Any], diagnostics: bool = False) -> str:
    """A run's variant table, its per-group tables and its baseline check, for a README block (and its
    diagnostics tables: ``diagnostics``)."""
    parts = [f"Run `{scores.get('run_id')}` ({run_label(scores)}):", "", render_table(scores)]
    for field, body in render_groups(scores):
        parts += [f"By {field} (EM [95 % Wilson] / containment):", "", body]
    if (checks := render_baseline_checks(scores)) is not None:
        parts += ["Does each model variant beat its no-model baseline?", "", checks]
    if diagnostics:  # where the passage readers lose, and context against memory
        parts += render_diagnostics(scores)
    return "\n".join(parts)


def update_readme_blocks(
    readme: Path,
    run: Path,
    reader_before: str | None,
    blocks: dict[str, str],
    sweeps: Iterable[Path] = (),
    perf_dir: Path = PERF_DIR,
    pages: Iterable[Path] = (),
    timing_run: Path | None = None,
) -> list[str]:
    """Regenerate every generated block of ``readme`` and of the other ``pages`` (docs/*.md) from committed
    JSON: the results and baselines tables of ``run``, its ``make_bench.json`` timing, the reader before →
    after table (``reader_before``: the first reader's run), ``blocks`` (name → run directory: that run's
    summary), the learning curves of ``sweeps``, and every perf block whose marker is in ``readme`` and whose
    JSON is in ``perf_dir``. Each run block goes to every page that has its markers (at least one must).
    Returns what changed."""
    readme = Path(readme)
    texts = {p: p.read_text(encoding="utf-8") for p in [readme, *map(Path, pages)]}
    present = {p: set(block_names(t)) for p, t in texts.items()}
    bodies = _run_bodies(run, reader_before, blocks, sweeps, set().union(*present.values()), timing_run)
    out = []
    for name, src, body in bodies:
        targets = [p for p in texts if name in present[p]] or [readme]  # none: the README's error
        for page in targets:
            after = read_json(run / "scores.json")
            changed = update_readme(page, after) if body is None else update_readme_block(page, name, body)
            where = "" if page == readme else f" ({page})"
            out.append(f"{name} {'updated' if changed else 'unchanged'} from {src}{where}")
    for name, src, body in perf_bodies(present[readme], perf_dir):
        changed = update_readme_block(readme, name, body)
        out.append(f"{name} {'updated' if changed else 'unchanged'} from {src}")
    return out


def _run_bodies(
    run: Path,
    reader_before: str | None,
    blocks: dict[str, str],
    sweeps: Iterable[Path],
    present: set[str],
    timing_run: Path | None = None,
) -> list[tuple[str, Path, str | None]]:
    """(name, source, body) of every run block; body None = the results (+ baselines) table. The timing
    block comes from ``timing_run``'s make_bench.json (default: ``run``'s): the headline may be a study run
    while the timing that matters is `make bench`'s."""
    from bench.reporting.judge_tables import render_judge
    from bench.reporting.run_tables import render_reader_change, render_timing

    after = read_json(run / "scores.json")
    bodies: list[tuple[str, Path, str | None]] = [("results", run / "scores.json", None)]
    timing = Path(timing_run or run) / "make_bench.json"
    if timing.exists():
        env = (
            read_json(timing.parent / "scores.json").get("env")
            if (timing.parent / "scores.json").exists()
            else None
        )
        bodies.append(("timing", timing, render_timing(read_json(timing), env)))
    if reader_before:  # BEFORE_DIR or BEFORE_DIR=AFTER_DIR (after: the README's run unless named)
        before_dir, _, after_dir = reader_before.partition("=")
        before = Path(before_dir) / "scores.json"
        reader_after = read_json(Path(after_dir) / "scores.json") if after_dir else after
        bodies.append(("reader", before, render_reader_change(read_json(before), reader_after)))
    for name, run_dir in blocks.items():
        src = Path(run_dir) / "scores.json"
        if name.startswith("corpus-size"):  # SMALL_RUN=LARGE_RUN: the same questions over two corpora
            from bench.reporting.corpus_compare import render as render_corpora

            small, _, large = str(run_dir).partition("=")
            bodies.append((name, Path(large) / "scores.json", render_corpora(Path(small), Path(large))))
            continue
        if name == "longform":  # the long-form twin: its language table (bench/eval/longform.py)
            from bench.reporting.longform_table import render_longform

            bodies.append((name, src, render_longform(read_json(src))))
            continue
        bodies.append((name, src, render_run_summary(read_json(src), diagnostics=name in DIAGNOSED_BLOCKS)))
    if "groups" in present:  # the headline run by stratum / relation (the question rows' fields)
        groups = [
            f"By {field} (EM [95 % Wilson] / containment):\n\n{body}" for field, body in render_groups(after)
        ]
        bodies.append(
            ("groups", run / "scores.json", "\n".join(groups) or "No per-group fields in this run.\n")
        )
    for name in sorted(n for n in present if n.startswith("judge-")):  # a run's LLM judge: judge-<run name>
        if (judged := render_judge(run.parent / name.removeprefix("judge-"))) is not None:
            bodies.append(
                (name, run.parent / name.removeprefix("judge-") / "judge.json", "\n\n".join(judged))
            )
    if "ft-arm" in present:  # the FT variants' adapter, described from its record (not typed)
        bodies.append(("ft-arm", run / "scores.json", render_ft_arm(after)))
    if "costs" in present and (costs := render_costs(after)) is not None:
        bodies.append(("costs", run / "scores.json", costs))
    if sweeps:  # every sweep in one block; the README shows the tables, the plots live in REPORT.md
        from bench.reporting.curves import render_section

        roots = [Path(r) for r in sweeps]
        curve = "\n".join(
            render_section(r).replace("## Learning curve", "#### Learning curve") for r in roots
        )
        bodies.append(("learning-curve", roots[0] / "sweep.json", curve))
    return bodies


def perf_bodies(present: Iterable[str], perf_dir: Path = PERF_DIR) -> list[tuple[str, Path, str]]:
    """(name, source JSON, rendered body) of every perf block named in ``present`` whose JSON exists."""
    wanted = set(present)
    out: list[tuple[str, Path, str]] = []
    for name, load in PERF_BLOCKS.items():
        if name in wanted and (found := load(Path(perf_dir))) is not None:
            out.append((name, found[0], found[1]))
    return out


def update_doc_blocks(doc: Path, perf_dir: Path = PERF_DIR) -> list[str]:
    """Render every perf block of a docs page (``docs/*.md``) from ``perf_dir``; a marker no renderer knows is
    an error (it would keep hand-typed figures). Run blocks are left to :func:`update_readme_blocks`.
    Returns what changed."""
    names = block_names(Path(doc).read_text(encoding="utf-8"))
    runs = {*RUN_BLOCKS, *NAMED_RUN_BLOCKS}  # rendered from runs by update_readme_blocks (--readme)
    runs_judged = [
        n for n in names if n.startswith("judge-")
    ]  # judge-<run>: a run's judge, with --readme too
    unknown = [n for n in names if n not in PERF_BLOCKS and n not in runs and n not in runs_judged]
    if unknown:
        raise BenchError(f"{doc}: blocks {unknown} have no renderer (known: {sorted(PERF_BLOCKS)})")
    out = []
    for name, src, body in perf_bodies(names, perf_dir):
        changed = update_readme_block(doc, name, body)
        out.append(f"{name} {'updated' if changed else 'unchanged'} from {src}")
    return out


def update_readme(readme: Path, scores: dict[str, Any]) -> bool:
    """Replace the results block of ``readme`` with :func:`render_table`, and its baselines block (when the
    README has one) with the no-model baseline check."""
    changed = update_readme_block(readme, "results", render_table(scores))
    if "<!-- baselines:start -->" in Path(readme).read_text(encoding="utf-8"):
        body = render_baseline_checks(scores) or "_No no-model baselines in this run._\n"
        if detectable := render_detectable(scores, ["exact_match", "f1_qstripped"]):
            # what this n can separate: differences smaller than this are noise
            here = "the run's paired comparisons (REPORT.md)"
            body += "\n" + detectable.replace("the comparisons above", here)
        changed = update_readme_block(readme, "baselines", body) or changed
    return changed


def update_readme_block(readme: Path, name: str, body: str) -> bool:
    """Replace the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in ``readme``."""
    start_marker, end_marker = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = Path(readme).read_text(encoding="utf-8")
    start, end = text.find(start_marker), text.find(end_marker)
    if start < 0 or end < start:
        raise BenchError(f"{readme}: markers {start_marker} ... {end_marker} not found")
    new = text[: start + len(start_marker)] + "\n" + body + text[end:]
    if new == text:
        return False
    atomic_write_text(readme, new)
    return True
