"""The protocol between the suite runner and one side of one workload.

The runner starts ``python -m bench.<side> WORKLOAD --backend B --scale S``
in a fresh process (DBOS is a process-wide singleton, and a fresh process
keeps one library's caches and threads from colouring the other's figures).
The child prints progress on standard error and, as its last line on
standard output, one JSON object::

    {"available": true, "metrics": {"p50_ms": {"median": ..., ...}}}
    {"available": false, "reason": "stateshift.App has no workflow() yet"}

Worker processes that a workload spawns itself (queues, crash recovery)
speak in plain lines on standard output: ``READY``, ``DONE <n>``...
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from bench.common import progress

ROOT = Path(__file__).resolve().parent.parent

# Sizes of every workload; "quick" is a smoke run, "full" the published one.
# "repeats" is the number of runs of a workload; "repeats_<workload>" overrides
# it for the long ones (queue, crash, timers) to keep the suite short.
SCALES: dict[str, dict[str, int]] = {
    "quick": {
        "repeats": 2,
        "one_step": 30,
        "ten_step": 8,
        "queue": 100,
        "timers_small": 100,
        "timers_large": 500,
        "timers_due": 50,
        "crash": 30,
        "calls": 200,
        "cold_runs": 3,
        "repeats_queue": 1,
        "repeats_crash": 1,
        "repeats_timers": 1,
        "repeats_entity": 1,
    },
    "full": {
        "repeats": 5,
        "one_step": 200,
        "ten_step": 40,
        "queue": 1_000,
        "timers_small": 1_000,
        "timers_large": 10_000,
        "timers_due": 100,
        "crash": 200,
        "calls": 1_000,
        "cold_runs": 7,
        "repeats_queue": 3,
        "repeats_crash": 3,
        "repeats_timers": 3,
        "repeats_state": 3,
        "repeats_entity": 3,
    },
}
# What one side runs smaller or fewer times (DBOS is the slow side of these).
SIDE_SCALES: dict[str, dict[str, dict[str, int]]] = {
    "dbos": {
        "quick": {"queue": 50, "calls": 100},
        "full": {"repeats": 3, "queue": 500, "repeats_queue": 2, "calls": 300},
    },
}


def sizes_of(side: str, scale: str) -> dict[str, int]:
    """The sizes ``side`` runs at ``scale``."""
    return {**SCALES[scale], **SIDE_SCALES.get(side, {}).get(scale, {})}


class NotAvailable(Exception):
    """This side cannot run this workload (a missing feature or package)."""


@dataclass(frozen=True)
class Job:
    """What one child process is asked to measure."""

    workload: str
    backend: str
    scale: str
    side: str = "stateshift"

    @property
    def sizes(self) -> dict[str, int]:
        return sizes_of(self.side, self.scale)

    @property
    def repeats(self) -> int:
        sizes = self.sizes
        return sizes.get(f"repeats_{self.workload}", sizes["repeats"])


def summarize(figures: Sequence[float]) -> dict[str, float]:
    """Median, min and max of several runs' figures."""
    return {
        "median": statistics.median(figures),
        "min": min(figures),
        "max": max(figures),
        "runs": len(figures),
    }


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile of ``samples`` (nearest rank)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def repeat(job: Job, run: Callable[[int], dict[str, float]]) -> dict[str, Any]:
    """Call ``run(index)`` ``job.repeats`` times; summarize each metric."""
    runs: list[dict[str, float]] = []
    for index in range(job.repeats):
        started = time.perf_counter()
        runs.append(run(index))
        progress(
            f"{job.workload}/{job.backend} run {index + 1}/{job.repeats}"
            f" ({time.perf_counter() - started:.1f} s)"
        )
    return {name: summarize([r[name] for r in runs]) for name in runs[0]}


def child_main(
    side: str, workloads: Mapping[str, Callable[[Job], dict[str, Any]]]
) -> None:
    """Parse the runner's arguments, run one workload, print its JSON line."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{side}_side")
    parser.add_argument("workload", choices=sorted(workloads))
    parser.add_argument("--backend", choices=["sqlite", "postgresql"])
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    args = parser.parse_args()
    job = Job(args.workload, args.backend or "sqlite", args.scale, side)

    try:
        answer: dict[str, Any] = {
            "available": True,
            "metrics": workloads[job.workload](job),
        }
    except NotAvailable as missing:
        answer = {"available": False, "reason": str(missing)}
    except Exception as error:  # report it in the table rather than crash the suite
        traceback.print_exc()
        answer = {"available": False, "reason": f"failed: {error!r}"[:300]}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


# --- worker processes ----------------------------------------------------


def child_env() -> dict[str, str]:
    """The environment for a child: the repo's ``src`` and ``bench`` importable."""
    env = dict(os.environ)
    paths = [str(ROOT / "src"), str(ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def spawn(module: str, *args: str) -> subprocess.Popen[str]:
    """Start ``python -m module args`` with line-buffered pipes."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
        cwd=ROOT,
        env=child_env(),
    )


def expect(process: subprocess.Popen[str], word: str, timeout_s: float = 120) -> str:
    """Read lines from ``process`` until one starts with ``word``."""
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited (rc={process.wait()}) before {word}")
        if line.startswith(word):
            return line.strip()
    raise RuntimeError(f"no {word} from worker within {timeout_s} s")


def count_lines(
    processes: Sequence[subprocess.Popen[str]], word: str
) -> threading.Semaphore:
    """A semaphore released once per line starting with ``word``, from any."""
    seen = threading.Semaphore(0)

    def read(process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith(word):
                seen.release()

    for process in processes:
        threading.Thread(target=read, args=(process,), daemon=True).start()
    return seen


def wait_count(seen: threading.Semaphore, count: int, timeout_s: float) -> None:
    """Take ``count`` releases, allowing ``timeout_s`` between two."""
    for _ in range(count):
        if not seen.acquire(timeout=timeout_s):
            raise RuntimeError(f"workers made no progress for {timeout_s} s")


def say(stream: IO[str] | None, line: str) -> None:
    """Write one line to a worker's stdin (or, from a worker, to stdout)."""
    assert stream is not None
    stream.write(line + "\n")
    stream.flush()


def stop(process: subprocess.Popen[str], timeout_s: float = 30) -> None:
    """Close a worker's stdin and wait for it; kill it if it hangs."""
    try:
        if process.stdin is not None:
            process.stdin.close()
    except BrokenPipeError:
        pass
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
