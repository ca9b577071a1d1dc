"""The machine record every ``results/perf/*.json`` carries, and the one line a README table states from it.

A measurement wraps its timed part in :class:`MachineProbe`; ``probe.record()`` gives a dict with the CPU
model (from ``/proc/cpuinfo``), cores, torch version, the load average at start and end, and how much CPU
*other* processes used meanwhile (``/proc/stat`` minus this process's and its waited-for children's CPU).
The load average alone cannot say whether a run was disturbed: right after another job it is high on a
quiet machine, and at the end it counts the measurement itself. :func:`machine_line` calls a run *contended*
when other processes (at any priority: on this project's 2-vCPU VMs a job at nice 19 on the other vCPU still
slowed single-process ingest by half) or the hypervisor's steal took more than :data:`CONTENDED_SHARE` of the
machine's CPU time during it.
"""

from __future__ import annotations

import os
import platform
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

CONTENDED_SHARE = 0.10  # of wall time x cores, taken by other processes (any priority) or steal
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The ``model name`` line of ``/proc/cpuinfo`` (``platform.processor()`` where there is none)."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def family_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[int, int] | None:
    """(cpu family, model) from /proc/cpuinfo, None where it names neither: VMs name different
    microarchitectures alike ("AMD EPYC" is Zen 4 or Zen 5 here), whose peaks differ twofold."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    got = dict(re.findall(r"^(cpu family|model)\s*:\s*(\d+)\s*$", text, re.MULTILINE))
    return (int(got["cpu family"]), int(got["model"])) if len(got) == 2 else None


def cpu_family(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """``family 26, model 2`` ("" where /proc/cpuinfo says nothing)."""
    fm = family_model(cpuinfo)
    return f"family {fm[0]}, model {fm[1]}" if fm else ""


def torch_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("torch")
    except Exception:  # not installed
        return None


def _proc_stat() -> dict[str, float] | None:
    """Seconds of CPU time since boot, all cores: ``busy`` (user+system+irq, not niced), ``nice``, ``steal``;
    None off Linux."""
    try:
        first = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()
    except (OSError, IndexError):
        return None
    v = [int(x) / _TICK for x in first[1:]]
    v += [0.0] * (8 - len(v))
    user, nice, system, _idle, _iowait, irq, softirq, steal = v[:8]
    return {"busy": user + system + irq + softirq, "nice": nice, "steal": steal}


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _procs() -> dict[int, tuple[int, int, int, int]]:
    """pid → (parent pid, start time, own CPU ticks, its reaped children's ticks) of every live process."""
    out: dict[int, tuple[int, int, int, int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            f = stat.read_text().rsplit(")", 1)[1].split()  # after "(comm)": state ppid pgrp ...
            out[int(stat.parent.name)] = (
                int(f[1]),
                int(f[19]),
                int(f[11]) + int(f[12]),
                int(f[13]) + int(f[14]),
            )
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
    return out


def _tree(pid: int, procs: dict[int, tuple[int, int, int, int]]) -> set[int]:
    """``pid`` and its live descendants in ``procs``."""
    tree, frontier = set(), {pid} & set(procs)
    while frontier:
        tree |= frontier
        frontier = {p for p, row in procs.items() if row[0] in frontier} - tree
    return tree


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, with their reaped children) of process ``pid`` and its live descendants:
    a server started in its own session (vLLM's engine under the reaper), whose workers this process never
    reaps."""
    procs = _procs()
    return sum(procs[p][2] + procs[p][3] for p in _tree(pid, procs)) / _TICK


class TreeCpuSampler:
    """CPU seconds of process ``pid`` and every descendant it ever had, reaped or not: a thread reads each
    one's own ticks every ``interval`` s, and a process counts with its last reading. A server's worker that
    its parent never reaps (vLLM's engine core, orphaned when its API server exits first) still counts,
    which :func:`_own_cpu` and :func:`tree_cpu_s` after the fact cannot see. Missed: what a process spends
    after its last reading (< ``interval`` s of it), and processes shorter than ``interval``."""

    def __init__(self, pid: int | None = None, interval: float = 0.5) -> None:
        self.pid, self.interval = pid or os.getpid(), interval
        self._last: dict[tuple[int, int], int] = {}  # (pid, start time): a reused pid is another process
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="tree-cpu", daemon=True)

    def sample(self) -> None:
        procs = _procs()
        tree = _tree(self.pid, procs)
        with self._lock:
            for p in tree:
                self._last[(p, procs[p][1])] = procs[p][
                    2
                ]  # its own ticks: a reaped child is not counted twice

    def total(self) -> float:
        """Sample now; the CPU seconds counted so far."""
        self.sample()
        with self._lock:
            return sum(self._last.values()) / _TICK

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeCpuSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5 * self.interval + 1)


class MachineProbe:
    """``with MachineProbe() as probe: ...; doc["machine"] = probe.record()``.

    ``own_cpu`` replaces the default count of this process's CPU (itself + its reaped children) when the
    measured work runs in processes that are never reaped by this one (a server in its own session)."""

    def __init__(self, own_cpu: Callable[[], float] = _own_cpu) -> None:
        self._own_cpu = own_cpu
        self._extra_own = 0.0

    def add_own(self, seconds: float) -> None:
        """Count ``seconds`` of CPU as this measurement's own: a server it started and stopped without
        reaping its workers (:func:`tree_cpu_s` read before the stop)."""
        self._extra_own += seconds

    def __enter__(self) -> MachineProbe:
        self.start_load = list(os.getloadavg())
        self.start_stat, self.start_own = _proc_stat(), self._own_cpu()
        self.start_wall = time.monotonic()
        self.end: dict[str, Any] | None = None
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Take the end sample (idempotent: the first call counts)."""
        if self.end is None:
            self.end = {"load": list(os.getloadavg()), "stat": _proc_stat(), "own": self._own_cpu()}
            self.end["wall"] = time.monotonic() - self.start_wall

    def record(self) -> dict[str, Any]:
        self.stop()
        assert self.end is not None
        cores = os.cpu_count() or 1
        out: dict[str, Any] = {
            "cpu_model": cpu_model(),
            **({"cpu_family": fam} if (fam := cpu_family()) else {}),
            "cores": cores,
            "torch": torch_version(),
            "python": platform.python_version(),
            "load_average_start": [round(x, 2) for x in self.start_load],
            "load_average_end": [round(x, 2) for x in self.end["load"]],
            "wall_s": round(self.end["wall"], 2),
        }
        a, b = self.start_stat, self.end["stat"]
        if a is not None and b is not None:
            own = self.end["own"] - self.start_own + self._extra_own
            # Own threads may run niced (qdrant-edge lowers its optimiser threads' priority), so this
            # process's CPU is taken from busy + nice together, not from busy alone.
            niced = b["nice"] - a["nice"]
            out["own_cpu_s"] = round(own, 1)
            out["others_cpu_s"] = round(max(0.0, b["busy"] - a["busy"] + niced - own), 1)
            out["niced_cpu_s"] = round(niced, 1)
            out["others_counts_niced"] = True
            out["steal_s"] = round(b["steal"] - a["steal"], 1)
        return out


def others_share(m: dict[str, Any]) -> float | None:
    """Share of the machine's CPU time (wall x cores) that other processes (niced ones too) and steal took."""
    wall, cores = m.get("wall_s"), m.get("cores")
    if not wall or not cores or "others_cpu_s" not in m:
        return None
    niced = 0.0 if m.get("others_counts_niced") else float(m.get("niced_cpu_s") or 0.0)  # early records
    taken = float(m["others_cpu_s"]) + niced + float(m.get("steal_s") or 0.0)
    return taken / (float(wall) * int(cores))


def is_contended(m: dict[str, Any]) -> bool:
    """From the CPU other processes took; without that, a 1-minute load average at start ≥ half the cores."""
    share = others_share(m)
    if share is not None:
        return share > CONTENDED_SHARE
    load = m.get("load_average_start") or [0.0]
    return float(load[0]) >= 0.5 * int(m.get("cores") or 1)


def machine_line(m: dict[str, Any] | None) -> str:
    """``quiet — AMD EPYC, 2 cores, torch 2.13.0; load 0.12 → 1.95; other processes 1 % of the CPU``."""
    if not m:
        return "*contended?* — no machine record in this JSON"
    state = "*contended*" if is_contended(m) else "quiet"
    cpu = str(m.get("cpu_model") or "unknown CPU") + (f" ({m['cpu_family']})" if m.get("cpu_family") else "")
    parts = [cpu, f"{m.get('cores', '?')} cores"]
    if m.get("torch"):
        parts.append(f"torch {m['torch']}")
    start, end = m.get("load_average_start"), m.get("load_average_end")
    load = f"load {start[0]:.2f}" if start else ""
    if start and end:
        load += f" → {end[0]:.2f}"
    text = f"{state} — {', '.join(parts)}" + (f"; {load}" if load else "")
    share = others_share(m)
    if share is not None:
        text += f"; other processes {share:.0%} of the CPU"
        if m.get("niced_cpu_s") and m.get("wall_s") and not m.get("others_counts_niced"):  # early records
            niced = float(m["niced_cpu_s"]) / (float(m["wall_s"]) * int(m.get("cores") or 1))
            text += f" ({niced:.0%} niced)" if niced >= 0.01 else ""
    return text
