"""Interrupted runs (issue 32): a vLLM variant interrupted mid-list keeps what it answered and resumes; no
server child outlives the bench process, whether it gets SIGTERM or SIGKILL; a server that never comes up
fails at its deadline with its log; two runs on one directory: the second refuses with a clear message.

The engine is tests/fake_vllm.py behind a ``vllm.python`` script, so this runs without vLLM's virtualenv."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bench.config import BenchError, Config, ModelConfig
from bench.generation.vllm_engine import EngineSpec, VllmServer
from tests.conftest import held_in_a_thread
from tests.fictional import write_corpus

REPO = Path(__file__).resolve().parent.parent


def fake_python(tmp: Path) -> Path:
    """``<python> -m vllm.entrypoints.openai.api_server ARGS`` → ``python tests/fake_vllm.py ARGS``."""
    script = tmp / "vllm-python"
    script.write_text(f'#!/bin/sh\nshift 2\nexec {sys.executable} {REPO / "tests" / "fake_vllm.py"} "$@"\n')
    script.chmod(0o755)
    return script


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose (its parent, the killed bench, cannot reap it)
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


def run_cmd(tmp: Path, model: Path, questions: Path, out: Path) -> list[str]:
    sets = [
        f"model.name={model}", "model.backend=vllm", f"vllm.python={fake_python(tmp)}",
        "vllm.max_in_flight=2", "vllm.start_timeout_s=120", f"questions={questions}",
        f"results_dir={tmp / 'results'}", "split=", f"corpus={tmp / 'ficcao.xml'}",
        "run.variants=base", "run.bootstrap_samples=50", "run.latency_probe=0",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "bench", "run", "--profile", "faquad", "--output", str(out)]
    return cmd + [x for s in sets for x in ("--set", s)]


def fake_env(tmp: Path, delay: float) -> dict[str, str]:
    return {
        **os.environ, "PYTHONPATH": str(REPO), "FAKE_VLLM_PIDFILE": str(tmp / "server.pid"),
        "FAKE_VLLM_REQUESTS": str(tmp / "requests.txt"), "FAKE_VLLM_DELAY_S": str(delay),
        "FAKE_VLLM_CHILD": "1",
    }  # fmt: skip


def cached(out: Path) -> int:
    path = out / "cache" / "base.jsonl"
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_interrupted_vllm_variant_keeps_its_answers_and_leaves_no_server(
    tmp_path: Path, tiny_model_dir: Path, sig: signal.Signals
) -> None:
    _, questions = write_corpus(tmp_path)
    n = len(questions.read_text(encoding="utf-8").splitlines())
    out = tmp_path / "run"
    cmd = run_cmd(tmp_path, tiny_model_dir, questions, out)
    proc = subprocess.Popen(
        cmd, env=fake_env(tmp_path, 0.25), cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until(lambda: cached(out) >= 4 or proc.poll() is not None, 180, "4 answers cached")
        assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else ""
        server = int((tmp_path / "server.pid").read_text())
        engine_core = int((tmp_path / "server.pid.child").read_text())
        proc.send_signal(sig)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    assert rc == (143 if sig == signal.SIGTERM else -9), err[-3000:]
    kept = cached(out)
    assert 4 <= kept < n, (kept, n)  # the variant's whole list was one batch: its answers so far are kept
    wait_until(lambda: not alive(server), 30, f"the vLLM server (pid {server}) stopped after {sig.name}")
    wait_until(lambda: not alive(engine_core), 30, f"the server's own child (pid {engine_core}) stopped")
    if sig == signal.SIGTERM:
        assert "interrupted: finished items are kept" in err

    asked = len((tmp_path / "requests.txt").read_text(encoding="utf-8").splitlines())
    done = subprocess.run(cmd, env=fake_env(tmp_path, 0.0), cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    again = len((tmp_path / "requests.txt").read_text(encoding="utf-8").splitlines()) - asked
    assert again == n - kept  # only the questions not answered before the interrupt are asked again
    rows = [json.loads(line) for line in (out / "answers.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(r["question_id"] for r in rows) == sorted(
        json.loads(line)["id"] for line in questions.read_text(encoding="utf-8").splitlines()
    )
    assert all(r["error"] is None and r["answer"] for r in rows)


def test_a_server_that_never_answers_fails_at_its_deadline_with_its_log(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_NEVER_READY", "1")
    monkeypatch.setenv("FAKE_VLLM_PIDFILE", str(tmp_path / "server.pid"))
    cfg = Config(model=ModelConfig(name=str(tiny_model_dir), backend="vllm"), results_dir=str(tmp_path))
    cfg = replace(cfg, vllm=replace(cfg.vllm, python=str(fake_python(tmp_path)), start_timeout_s=3))
    server = VllmServer(cfg, EngineSpec(tiny_model_dir, "tiny"), tmp_path / "logs")
    t0 = time.monotonic()
    with pytest.raises(BenchError, match=r"did not answer within vllm.start_timeout_s=3s") as err:
        server.start()
    assert time.monotonic() - t0 < 30
    assert "fake vllm: starting on port" in str(err.value)  # the tail of the server's log
    pid = int((tmp_path / "server.pid").read_text())
    wait_until(lambda: not alive(pid), 30, "the server that never came up was stopped")
    assert server.proc is None


def test_two_runs_on_one_directory_the_second_refuses(tmp_path: Path, tiny_model_dir: Path) -> None:
    _, questions = write_corpus(tmp_path)
    out = tmp_path / "run"
    cmd = run_cmd(tmp_path, tiny_model_dir, questions, out)
    first = subprocess.Popen(cmd, env=fake_env(tmp_path, 0.25), cwd=tmp_path, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: cached(out) >= 1, 180, "the first run answering")
        second = subprocess.run(cmd, env=fake_env(tmp_path, 0.0), cwd=tmp_path, capture_output=True,
                                text=True, timeout=300)  # fmt: skip
        assert second.returncode == 2, second.stderr[-2000:]
        assert "another bench run is using this run directory (pid" in second.stderr
        assert first.wait(timeout=300) == 0
    finally:
        if first.poll() is None:
            first.kill()
    rows = (out / "answers.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(questions.read_text(encoding="utf-8").splitlines())


def test_a_second_index_build_waits_for_the_first(tmp_path: Path) -> None:
    """Two `make bench` in one checkout: `bench index` takes the index artifact's lock (as `bench run` does),
    so the second build waits for the first instead of opening the same embedded store."""
    import threading

    from bench import artifacts
    from bench.config import load_config
    from bench.core.dist import artifact_lock

    dump, _ = write_corpus(tmp_path)
    sets = [f"corpus={dump}", f"results_dir={tmp_path / 'results'}", "index.embedder=hashing"]
    key = artifacts.index(load_config("faquad", sets)).key
    with held_in_a_thread(artifact_lock(tmp_path / "results", "index", key)):
        cmd = [sys.executable, "-m", "bench", "index", "--profile", "faquad"]
        cmd += [x for s in sets for x in ("--set", s)]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        second = subprocess.Popen(cmd, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        log: list[str] = []
        reader = threading.Thread(target=lambda: log.extend(second.stderr or []), daemon=True)
        reader.start()
        wait_until(lambda: any("waiting for another process building the index" in x for x in log), 120,
                   "the second build waiting")  # fmt: skip
        assert second.poll() is None and not list((tmp_path / "results" / "index").glob("*/manifest.json"))
    assert second.wait(timeout=300) == 0, "".join(log)[-3000:]
    assert len(list((tmp_path / "results" / "index").glob("*/manifest.json"))) == 1
