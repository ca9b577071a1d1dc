"""Several processes, one job: which share a process takes, cross-process locks, and the end-of-run barrier.

A process learns its place from ``--shard i/n`` or from the variables ``torchrun`` and ``accelerate launch``
set (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``). Nothing here starts processes: the launchers do that.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, TypeVar

from bench.errors import BenchError

log = logging.getLogger(__name__)

T = TypeVar("T")
#: How long a rank waits at a barrier for the slowest one (s; env BENCH_BARRIER_TIMEOUT_S). The ranks answer
#: equal shares, so they arrive minutes apart; a rank that died is named by rank 0 when the time is up.
DEFAULT_BARRIER_TIMEOUT_S = 30 * 60
#: How long a process waits for another one building the same artifact (s; env BENCH_LOCK_TIMEOUT_S): the
#: longest build is a fine-tuning run (~25 min for the default profile on 2 CPU cores).
DEFAULT_LOCK_TIMEOUT_S = 2 * 3600


@dataclass(frozen=True)
class Shard:
    """Share ``index`` of ``count``: the items ``index::count`` of an ordered list.

    ``launched``: the place came from a launcher's ``RANK``/``WORLD_SIZE`` (rank 0 then merges after a
    barrier), not from ``--shard`` (then ``bench merge`` does).
    """

    index: int = 0
    count: int = 1
    launched: bool = False

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise BenchError(f"shard {self.index}/{self.count}: need 0 <= i < n and n >= 1")

    @property
    def sharded(self) -> bool:
        return self.count > 1

    @property
    def suffix(self) -> str:
        """``.shard-i-of-n`` (empty for one process): the name part of this shard's files."""
        return f".shard-{self.index}-of-{self.count}" if self.sharded else ""

    def select(self, items: Sequence[T]) -> list[T]:
        """This shard's items: ``items[index::count]`` (disjoint, deterministic, covering every item)."""
        return list(items[self.index :: self.count])

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"1/4"`` → Shard(1, 4)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise BenchError(f"--shard {text!r}: expected I/N, e.g. --shard 0/4 (shards 0..N-1)")
    return Shard(int(m.group(1)), int(m.group(2)))


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        raise BenchError(f"environment variable {name}={raw!r} is not an integer") from None


def world_size() -> int:
    return max(1, _env_int("WORLD_SIZE", 1))


def rank() -> int:
    return _env_int("RANK", 0)


def local_rank() -> int:
    return _env_int("LOCAL_RANK", 0)


def shard_from_env() -> Shard:
    """The launcher's place (torchrun / accelerate launch), or the single shard 0/1."""
    n = world_size()
    return Shard(rank(), n, launched=n > 1) if n > 1 else Shard()


def pick_shard(explicit: str | None) -> Shard:
    """``--shard`` wins; otherwise the launcher's variables. Both at once must agree on n."""
    env = shard_from_env()
    if not explicit:
        return env
    shard = parse_shard(explicit)
    if env.sharded:
        raise BenchError(
            f"--shard {shard} under a launcher (RANK={env.index}, WORLD_SIZE={env.count}): use one or the "
            "other (the launcher already gives each process its share)"
        )
    return shard


def warn_one_process_launch() -> bool:
    """``accelerate launch --cpu --num_processes N`` without mpirun starts ONE process (accelerate's multi-CPU
    mode needs mpirun and a hostfile): say so instead of training quietly on one rank. True when warned."""
    single = world_size() <= 1 and os.environ.get("ACCELERATE_USE_CPU", "").lower() in {"1", "true"}
    if single and os.environ.get("MASTER_ADDR"):
        log.warning(
            "accelerate launch --cpu started one process (WORLD_SIZE unset): its multi-CPU mode needs "
            "mpirun. For N processes on CPUs use `accelerate launch --multi_gpu --num_processes N` or "
            "`torchrun --nproc_per_node N` (gloo; docs/scale.md)"
        )
        return True
    return False


def bind_local_device() -> None:
    """Under a launcher, rank r of a node sees one GPU, its LOCAL_RANK-th (``CUDA_VISIBLE_DEVICES``; an
    existing list is indexed): ``cuda`` then means that GPU in torch and in the engines the run starts
    (vLLM). Call it before anything touches CUDA; ``bench run`` and ``bench index`` do (``bench finetune``
    leaves devices to accelerate, which picks ``cuda:LOCAL_RANK`` itself)."""
    if world_size() <= 1:
        return
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    mine = visible[local_rank() % len(visible)] if visible else str(local_rank())
    os.environ["CUDA_VISIBLE_DEVICES"] = mine
    log.debug("rank %d: CUDA_VISIBLE_DEVICES=%s", rank(), mine)


@contextlib.contextmanager
def file_lock(path: Path, what: str, timeout_s: float | None = None) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``: processes that build the same artifact take turns, so the first
    builds it and the others find it built. Released when the block ends or the process dies (a killed
    holder never leaves it taken). A waiter gives up after ``timeout_s`` (default
    ``BENCH_LOCK_TIMEOUT_S`` or :data:`DEFAULT_LOCK_TIMEOUT_S`) with an error naming the holder."""
    limit = float(
        _env_int("BENCH_LOCK_TIMEOUT_S", DEFAULT_LOCK_TIMEOUT_S) if timeout_s is None else timeout_s
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as fh:
        if not try_flock(fh):
            log.info("waiting for another process building %s (%s, %s)", what, path, flock_holder(fh))
            deadline, note = time.monotonic() + limit, time.monotonic() + 60
            while not try_flock(fh):
                if time.monotonic() >= deadline:
                    raise BenchError(
                        f"{path}: {what} has been locked by {flock_holder(fh)} for over {limit:g} s; "
                        "is that process hung? (BENCH_LOCK_TIMEOUT_S sets the wait)"
                    )
                if time.monotonic() >= note:
                    log.info("still waiting for %s (%s)", what, flock_holder(fh))
                    note += 60
                time.sleep(0.1)
        mark_holder(fh)
        yield  # closing the file releases the lock


def try_flock(fh: IO[str]) -> bool:
    """Take an exclusive ``flock`` on the open lock file ``fh`` if it is free now; False when it is held."""
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def flock_holder(fh: IO[str]) -> str:
    """Who holds the lock file ``fh`` (``pid N``, as :func:`mark_holder` wrote it)."""
    fh.seek(0)
    return fh.read().strip() or "another process"


def mark_holder(fh: IO[str]) -> None:
    """Write this process into the lock file ``fh`` it now holds, for the error of the next one."""
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}\n")
    fh.flush()


def artifact_lock(results: Path, stage: str, key: str) -> contextlib.AbstractContextManager[None]:
    """:func:`file_lock` on ``results/locks/<stage>-<key>.lock``: processes building the same artifact (the
    shards of a run, sweep jobs, a ``bench finetune`` beside a ``bench run``) take turns."""
    safe = re.sub(r"[^\w.-]", "_", key)
    return file_lock(results / "locks" / f"{stage}-{safe}.lock", f"the {stage} artifact {safe}")


def barrier(tag: str) -> None:
    """Block until every launched rank reaches this point: a torch.distributed barrier over gloo (CPU, TCP
    through the launcher's MASTER_ADDR/MASTER_PORT), so no shared-filesystem marker can go stale. A no-op for
    one process. The process group is created here and destroyed after the barrier."""
    if world_size() <= 1:
        return
    import torch.distributed as tdist

    timeout = timedelta(seconds=_env_int("BENCH_BARRIER_TIMEOUT_S", DEFAULT_BARRIER_TIMEOUT_S))
    created = not tdist.is_initialized()
    if created:
        tdist.init_process_group(backend="gloo", timeout=timeout)
    try:
        log.info("rank %d/%d waiting at the %s barrier (up to %s)", rank(), world_size(), tag, timeout)
        if created:  # gloo's monitored barrier: rank 0 names the ranks that did not arrive in time
            tdist.monitored_barrier(timeout=timeout, wait_all_ranks=True)
        else:  # a group someone else made (accelerate, NCCL): a gloo side group for a CPU barrier
            tdist.barrier(group=tdist.new_group(backend="gloo", timeout=timeout))
    except RuntimeError as exc:  # a rank died or hung: every waiting rank fails instead of waiting on
        raise BenchError(
            f"rank {rank()}/{world_size()}: the {tag} barrier failed after up to {timeout}: {exc}"
        ) from exc
    finally:
        if created:
            tdist.destroy_process_group()
