"""docs/scale.md: the ptwiki projection is rendered from committed JSON (not typed), the config files it
points to load, and the commands it gives name flags the CLI has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from bench.__main__ import build_parser
from bench.reporting import readme, scale_projection

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "scale.md"
PERF = REPO / "results" / "perf"


def _block(text: str, name: str) -> str:
    return text.split(f"<!-- {name}:start -->\n", 1)[1].split(f"<!-- {name}:end -->", 1)[0]


def test_the_projection_block_is_rendered_from_the_committed_json() -> None:
    src = readme.PERF_BLOCKS["ptwiki-projection"](PERF)
    assert src is not None
    body = src[1]
    assert _block(DOC.read_text(encoding="utf-8"), "ptwiki-projection").strip() == body.strip()
    assert "**Projection, not measured on a GPU**" in body


def test_the_projection_divides_the_measured_rates() -> None:
    full = json.loads((PERF / "full-profile.json").read_text(encoding="utf-8"))
    docs = {"full-profile": full, "train-speed": {"tokens_per_s": {"a": 10.0, "b": 20.0}}}
    docs["backend-run"] = {
        "n_questions": 6,
        "backends": {"vllm": {"wall_s": 3.0, "variants": {"x": {}, "y": {}}}},
    }
    rows = {
        r["unit"]: r
        for r in scale_projection.stage_rows(docs["full-profile"], docs["train-speed"], docs["backend-run"])
    }
    assert rows["tokens"]["rate"] == 20.0 and rows["answers"]["rate"] == 4.0  # 6 questions x 2 variants / 3 s
    chunks, rate = full["projection"]["ptwiki_chunks"], full["stages"]["index_dense_slice"]["chunks_per_s"]
    body = scale_projection.render_ptwiki_projection(docs)
    dense = next(line for line in body.splitlines() if line.startswith("| index, dense"))
    cells = [c.strip() for c in dense.strip("|").split("|")]
    assert cells[3:] == [scale_projection.duration(chunks / rate / n) for n in scale_projection.PROCESSES]
    assert scale_projection.duration(30) == "30 s" and scale_projection.duration(3 * 86400) == "3.0 days"


def test_the_config_files_load() -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    text = DOC.read_text(encoding="utf-8")
    files = sorted(set(re.findall(r"docs/scale-configs/[\w.-]+\.yaml", text)))
    assert len(files) == 4
    for f in files:
        if "accelerate" in f:
            cfg = ClusterConfig.from_yaml_file(str(REPO / f))
            assert cfg.num_processes % 8 == 0 and cfg.mixed_precision == "no"
        else:
            compose = yaml.safe_load((REPO / f).read_text(encoding="utf-8"))
            assert sorted(compose["services"]) == ["qdrant1", "qdrant2", "qdrant3"]


def test_the_bench_flags_in_the_commands_exist() -> None:
    text = DOC.read_text(encoding="utf-8").replace("\\\n", " ")
    parser = build_parser()
    subs = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    seen = 0
    for m in re.finditer(r"-m bench (\w+)([^\n`#]*)", text):
        stage, rest = m.group(1), m.group(2)
        flags = {o for a in subs[stage]._actions for o in a.option_strings}
        for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
            assert flag in flags, f"{stage} {flag}"
        seen += 1
    assert seen >= 8
