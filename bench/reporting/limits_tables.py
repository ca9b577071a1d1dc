"""The ``limits`` block (README, docs/performance.md: one row per machine, from
``results/perf/limits-*.json``) and the ``time-breakdown`` block (docs/performance.md, from
``results/perf/time-breakdown.json``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.core.machine import is_contended, machine_line
from bench.reporting.tables import DASH, fmt_num, table

LIMITS_GLOB = "limits-*.json"
CONTENDED_NOTE = (
    " Not this CPU's fractions: other processes held a core while it ran, and two-thread torch kernels wait"
    " for it at every barrier (training suffers most); regenerate on a quiet machine (`make perf`)."
)
STAGE_LABELS = {
    "training": "training MFU",
    "embedding": "embedding MFU",
    "prefill": "prefill MFU",
    "decode": "decode, share of bandwidth",
}


def _pct(frac: Any) -> str:
    return f"{100 * frac:.0f} %" if isinstance(frac, int | float) else DASH


def _stage_cell(f: dict[str, Any] | None, unit: str) -> str:
    if not f:
        return DASH
    key = "achieved_gbs" if unit == "GB/s" else "achieved_gflops"
    cell = f"{_pct(f.get('fraction'))} ({fmt_num(f.get(key), 0)} {unit})"
    if f.get("fraction_of_shape_peak") is not None:  # against its own matmul shapes (bench.core.gemm_shapes)
        cell += f"; {_pct(f['fraction_of_shape_peak'])} of its shape peak"
    return cell


def _gflops(mat: dict[str, Any], dtype: str) -> str:
    return fmt_num((mat.get(dtype) or {}).get("gflops"), 0)


def render_limits(docs: list[dict[str, Any]]) -> str:
    """One row per machine: its measured peaks and each stage's fraction of them."""
    rows = []
    for d in docs:
        mm, peaks, fr = d.get("machine") or {}, d.get("peaks") or {}, d.get("fractions") or {}
        mat = peaks.get("matmul") or {}
        family = f" ({d['cpu_family']})" if d.get("cpu_family") else ""
        name = f"{d.get('cpu_model', DASH)}{family}, {d.get('cores', '?')} cores" + (
            " (*contended*)" if mm and is_contended(mm) else ""
        )
        rows.append(
            [
                name,
                f"{_gflops(mat, 'bfloat16')} / {_gflops(mat, 'float32')}",
                fmt_num((peaks.get("bandwidth") or {}).get("gbs"), 1),
                *(_stage_cell(fr.get(k), "GB/s" if k == "decode" else "GFLOP/s") for k in STAGE_LABELS),
            ]
        )
    head = ["machine", "bf16 / fp32 matmul GFLOP/s", "GB/s", *STAGE_LABELS.values()]
    return table(head, rows)


def render_limits_details(docs: list[dict[str, Any]]) -> str:
    """docs/performance.md: the table, each machine's stage throughputs and the FLOP formulas."""
    lines = [render_limits(docs)]
    for d in docs:
        st = d.get("stages") or {}
        tr, em, gen = st.get("training") or {}, st.get("embedding") or {}, st.get("generation") or {}
        bits = []
        if tr:
            bits.append(
                f"training {fmt_num(tr.get('tokens_per_s'), 1)} tokens/s ({tr.get('steps')} steps, "
                f"{tr.get('batch')}, {fmt_num(tr.get('s_per_step'), 2)} s/step)"
            )
        if em:
            bits.append(
                f"embedding {fmt_num(em.get('chunks_per_s'), 1)} chunks/s, "
                f"{fmt_num(em.get('tokens_per_s'), 0)} tokens/s ({em.get('chunks')} chunks)"
            )
        if gen:
            bits.append(
                f"vLLM prefill {fmt_num(gen.get('prefill_tokens_per_s'), 0)} tokens/s "
                f"({gen.get('prompt_tokens')}-token prompt), "
                f"decode {fmt_num(gen.get('decode_steps_per_s'), 1)} tokens/s at batch 1, "
                f"{fmt_num(gen.get('batch_decode_tokens_per_s'), 1)} at batch {gen.get('batch')}; "
                f"engine start {fmt_num(gen.get('engine_start_s'), 0)} s"
            )
        if sp := st.get("shape_peaks"):
            bits.append(
                "shape peaks (each stage's own bf16 matmuls timed alone, bench/core/gemm_shapes.py): "
                + ", ".join(
                    f"{k} {fmt_num(v.get('gflops'), 0)} GFLOP/s at {v.get('tokens_per_step')} tokens per step"
                    for k, v in sp.items()
                )
            )
        after = d.get("bf16_peak_after_stages_gflops")
        lines.append(
            f"- {d.get('cpu_model')}: {'; '.join(bits) or 'no stage measured'}. bf16 peak re-measured after "
            f"the stages: {fmt_num(after, 0)} GFLOP/s. {machine_line(d.get('machine'))}."
            + (CONTENDED_NOTE if is_contended(d.get("machine") or {}) else "")
        )
    if docs and (formulas := docs[0].get("formulas")):
        lines.append("")
        lines += [f"- {k}: {v}." for k, v in formulas.items()]
    return "\n".join(lines) + "\n"


def _prompt_rows(prompts: dict[str, Any]) -> list[list[str]]:
    return [
        [
            v,
            fmt_num(p.get("total"), 0),
            fmt_num(p.get("examples"), 0),
            fmt_num(p.get("passages"), 0),
            fmt_num(p.get("instruction_and_question"), 0),
            fmt_num(p.get("shared_prefix"), 0),
        ]
        for v, p in sorted(prompts.items())
    ]


def render_time_breakdown(doc: dict[str, Any]) -> str:
    """Stage accounting of the committed run, padding of the training batches, prompt tokens per variant."""
    st = doc.get("stages") or {}
    ft, run, stages = st.get("finetune") or {}, st.get("run") or {}, st.get("stages_s") or {}
    out = [
        f"The committed default run (`{doc.get('run')}`, {st.get('cpu_model')}): "
        f"{fmt_num(st.get('total_s'), 0)} s in all.",
        "",
        table(
            ["stage", "wall s", "accounted for by its records", "s", "the rest (s)"],
            [
                ["ingest", fmt_num(stages.get("ingest"), 0), DASH, DASH, DASH],
                ["index", fmt_num(stages.get("index"), 0), DASH, DASH, DASH],
                [
                    "finetune",
                    fmt_num(ft.get("wall_s"), 0),
                    f"training steps ({ft.get('steps')})",
                    fmt_num(ft.get("train_s"), 0),
                    fmt_num(float(ft.get("wall_s") or 0) - float(ft.get("train_s") or 0), 0),
                ],
                [
                    "run",
                    fmt_num(run.get("wall_s"), 0),
                    "generation + retrieval of every variant",
                    fmt_num(float(run.get("generation_s") or 0) + float(run.get("retrieval_s") or 0), 0),
                    fmt_num(run.get("unaccounted_s"), 0),
                ],
            ],
        ),
    ]
    if pb := doc.get("probe_before"):
        page_s, answer_s = fmt_num(pb.get("page_probe_s"), 1), fmt_num(pb.get("answer_probe_s"), 1)
        out.append(
            "\nThe fine-tuning stage's probe on the base model (before training; the same again after it): "
            f"page perplexities {page_s} s ({pb.get('page_probe_tokens')} tokens), "
            f"answer NLL of {pb.get('answer_probe_questions')} questions {answer_s} s; "
            f"{machine_line(doc.get('machine'))}."
        )
        if pb.get("compared_questions"):
            out.append(
                f"On the first {pb['compared_questions']} questions the answer probe took "
                f"{fmt_num(pb.get('one_by_one_s'), 1)} s scoring each whole prompt (the previous path) and "
                f"{fmt_num(pb.get('shared_prefix_s'), 1)} s with the shared prefix run once (largest NLL "
                f"difference {fmt_num(pb.get('max_abs_nll_difference'), 4)})."
            )
    if pad := doc.get("padding"):
        frac = pad.get("pad_fraction") or {}
        out.append(
            f"\nPadding in the training batches at the default settings ({pad.get('records')} records, batch "
            f"{pad.get('batch')}, ≤ {pad.get('max_length')} tokens, "
            f"mean {fmt_num(pad.get('mean_length'), 1)}): "
            f"{_pct(frac.get('sequential'))} of the computed token slots are padding in training order, "
            f"{_pct(frac.get('grouped_64'))} with each 64 consecutive records grouped by length, "
            f"{_pct(frac.get('packed'))} packed."
        )
    if prompts := doc.get("prompts"):
        head = [
            "variant",
            "prompt tokens",
            "worked examples",
            "passages",
            "instruction + question",
            "prefix shared with the previous prompt",
        ]
        out += [
            "",
            "Prompt tokens per variant (mean of the first 50 answers of the committed run):",
            "",
            table(head, _prompt_rows(prompts)),
        ]
    if floor := doc.get("prefill_floor"):
        out.append(_floor_line(floor, (doc.get("stages") or {}).get("stages_s") or {}))
    return "\n".join(out) + "\n"


def _floor_line(floor: dict[str, Any], stages: dict[str, Any]) -> str:
    """The run stage's floor: its prompts at this CPU's measured prefill rate."""
    parts = ", ".join(
        f"{v} {fmt_num(f.get('seconds'), 0)} s" for v, f in (floor.get("variants") or {}).items()
    )
    note = f" ({floor['note']})" if floor.get("note") else ""
    rate, share = fmt_num(floor.get("prefill_tokens_per_s"), 0), _pct(floor.get("prefill_fraction_of_peak"))
    return (
        f"\nThe prompts alone, at {floor.get('cpu_model')}'s measured prefill rate "
        f"({rate} tokens/s, {share} of its bf16 matmul peak){note}, each question's tokens past the prefix "
        f"it shares with the previous prompt: {parts}; {fmt_num(floor.get('total_s'), 0)} s of the run "
        f"stage's {fmt_num(stages.get('run'), 0)} s, before any decoding or engine start."
    )


def render_train_ab(doc: dict[str, Any]) -> str:
    """``results/perf/train-ab.json``: training tokens/s before and after a change, one process."""
    tps, sps, loss = doc.get("tokens_per_s") or {}, doc.get("s_per_step") or {}, doc.get("mean_loss") or {}
    sets, steps, batch = doc.get("settings") or {}, doc.get("steps"), doc.get("batch") or {}
    per = steps if isinstance(steps, dict) else {"before": steps, "after": steps}
    env = doc.get("env") or {}
    rows = [
        [k, " ".join(f"`{x}`" for x in [*sets.get(k, []), *env.get(k, [])]), str(per.get(k, DASH)),
         str(batch.get(k, DASH)),
         fmt_num(tps.get(k), 1), fmt_num(sps.get(k), 2), fmt_num(loss.get(k), 4)]
        for k in ("before", "after")
    ]  # fmt: skip
    gap = doc.get("mean_loss_rel_gap")
    head = ["run", "settings", "steps", "batch", "tokens/s", "s/step", "mean loss over the steps"]
    own = "; each run in a process of its own" if doc.get("processes") else ""
    return (
        f"{doc.get('order')}{own}; {machine_line(doc.get('machine'))}.\n\n"
        + table(head, rows)
        + f"\nAfter over before: **{fmt_num(doc.get('speedup'), 2)}×** tokens/s; mean losses differ by "
        f"{_pct(gap) if isinstance(gap, float) and gap >= 0.01 else f'{100 * (gap or 0):.2f} %'}."
        + _all_runs(doc.get("all_runs_tokens_per_s") or {})
        + "\n"
    )


def _all_runs(runs: dict[str, list[float]]) -> str:
    """Every run's tokens/s, in run order per side: the spread the best-of comparison hides."""
    if not runs:
        return ""
    sides = "; ".join(f"{k} {', '.join(fmt_num(x, 1) for x in runs.get(k, []))}" for k in ("before", "after"))
    return f" Every run's tokens/s: {sides}."


MAKE_BENCH_GLOB = "make-bench-*.json"


def _machine_note(doc: dict[str, Any]) -> str:
    m = doc.get("machine") or {}
    if "load_average_start" not in m:  # a timing written before make_bench.json kept the machine record
        return f"{m.get('cpu_model') or 'unknown CPU'}, {m.get('cores', '?')} cores; contention not recorded"
    return machine_line(m)


def _busy(doc: dict[str, Any]) -> str:
    """How busy the stages kept the cores: their own CPU seconds over wall x cores (after the install), and
    the wall time that CPU would need with the cores never idle."""
    m = doc.get("machine") or {}
    own, wall, cores = m.get("own_cpu_s"), m.get("wall_s"), m.get("cores")
    if not (isinstance(own, int | float) and wall and cores) or not doc.get("cpu_accounting"):
        return ""  # before the engine's CPU was counted as the run's own (TreeCpuSampler), own CPU was short
    share = float(own) / (float(wall) * int(cores))
    return f" The stages kept the {cores} cores {100 * share:.0f} % busy ({own:.0f} CPU s in {wall:.0f} s)."


def with_family(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    """A make-bench record whose machine record predates ``cpu_family``: the family its file is named after
    (``make-bench-<cpu>-f26m2.json``: bench.core.limits.machine_file read it from /proc/cpuinfo then)."""
    machine = doc.get("machine") or {}
    got = re.search(r"-f(\d+)m(\d+)\.json$", path.name)
    if machine.get("cpu_family") or not got:
        return doc
    return {**doc, "machine": {**machine, "cpu_family": f"family {got[1]}, model {got[2]}"}}


def render_make_bench(docs: list[dict[str, Any]]) -> str:
    """`make bench`'s stage wall times, one column per machine kind (``results/perf/make-bench-<cpu>.json``),
    each with its commit and machine record under the table."""
    from bench.reporting.run_tables import stage_order

    stages = stage_order(docs)
    head = ["stage", *(_cpu_label(d.get("machine") or {}) for d in docs)]
    rows = [[s, *(fmt_num((d.get("stages_s") or {}).get(s), 0) for d in docs)] for s in stages]
    rows.append(["**total**", *(fmt_num(d.get("total_s"), 0) for d in docs)])
    notes = [
        f"- {head[i + 1]}: commit `{str(d.get('git_commit') or DASH)[:12]}`, {d.get('finished', DASH)}; "
        f"run: {d.get('run') or 'fact answers; the long-form twin a stage of its own'}; {_machine_note(d)}."
        + _busy(d)
        for i, d in enumerate(docs)
    ]
    return "\n".join([table(head, rows).rstrip(), "", *notes]) + "\n"


def _cpu_label(machine: dict[str, Any]) -> str:
    family = f" ({machine['cpu_family']})" if machine.get("cpu_family") else ""
    return f"{machine.get('cpu_model') or DASH}{family}"


OP_PROFILE_GLOB = "op-profile-*.json"  # python -m bench.perf op-profile: one file per microarchitecture


OP_PROFILE_STAGES = {
    "training": "training (plain loop)", "trainer": "training (the trainer)", "embedding": "embedding",
}  # fmt: skip


def render_op_profile(docs: list[dict[str, Any]]) -> str:
    """Per machine and stage: the step time and each op family's share of the profiled time (matmuls with
    their in-place GFLOP/s), from ``op-profile-<cpu>.json`` (bench/perf/opprofile.py)."""
    from bench.perf.opprofile import FAMILIES

    names = [n for n, _ in FAMILIES] + ["other"]
    rows, notes = [], []
    for doc in docs:
        where = f"{doc.get('cpu_model', DASH)} ({doc.get('cpu_family') or 'family not recorded'})"
        for stage, label in OP_PROFILE_STAGES.items():
            st = doc.get(stage)
            if not st:
                continue
            fam = st.get("families") or {}
            cells = [f"{_pct((fam.get(n) or {}).get('share'))}" for n in names]
            if st.get("matmul_gflops_in_place") is not None:
                cells[0] += f" ({fmt_num(st['matmul_gflops_in_place'], 0)} GFLOP/s)"
            ms, rate = fmt_num(1000 * float(st["step_s_mean"]), 0), fmt_num(st["tokens_per_s"], 0)
            step = f"{ms} ms, {rate} tok/s"
            rows.append([where, label, step, *cells])
            note = f"- {where}, {label}: {st.get('setup', DASH)}."
            if st.get("tokens_per_step_mean"):
                note += f" {fmt_num(st['tokens_per_step_mean'], 1)} tokens a step on average."
            if kernels := st.get("attention_kernels_s"):
                note += (
                    f" One pass with torch's default attention kernel {fmt_num(kernels.get('default'), 2)} s,"
                    f" with its math path {fmt_num(kernels.get('math'), 2)} s."
                )
            notes.append(note)
        if doc.get("machine"):
            notes.append(f"- {where}: {machine_line(doc['machine'])}.")
    head = ["machine", "stage", "mean step (unprofiled)", *names]
    return table(head, rows).rstrip() + "\n\n" + "\n".join(notes) + "\n"
