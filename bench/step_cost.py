"""Per-step cost of a workflow, as a ratio to the commit floor.

A step of a running workflow is one durable checkpoint, so its cost is
compared with the cheapest durable write the backend offers
(:mod:`bench.floor`: one small row per transaction, measured in each run
right before and after the steps, on the same store). Each run starts
workflows of ``--steps`` trivial steps and of none, runs them in this
process (``app.run``), and takes the difference per step, so starting and
finishing a workflow are not counted.

Run: ``python -m bench.step_cost`` (add ``--steps N --workflows W --repeats R``,
``--backend sqlite|postgresql``, ``--profile`` for a cProfile of the hot path).
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import statistics
import time
from typing import Any

import stateshift as ss
from bench.common import fresh_store_config, print_table, progress, write_results
from bench.floor import commit_ms, prepare

FLOOR_COMMITS = 200


def define(app: ss.App) -> tuple[Any, Any]:
    """Register a workflow of ``steps`` trivial steps and an empty one."""

    @app.step(name="noop")
    def noop(value: int) -> int:
        return value + 1

    @app.workflow(name="bench-steps")
    def steps(count: int) -> int:
        value = 0
        for _ in range(count):
            value = noop(value)
        return value

    @app.workflow(name="bench-empty")
    def empty(count: int) -> int:
        return count

    return steps, empty


def workflows_ms(app: ss.App, fn: Any, count: int, workflows: int, ids: Any) -> float:
    """Milliseconds per workflow of ``fn(count)``, run here to the end."""
    started = time.perf_counter()
    for _ in range(workflows):
        app.run(fn, count, workflow_id=f"b-{next(ids)}")
    return (time.perf_counter() - started) * 1000.0 / workflows


def measure(
    backend: str, steps: int, workflows: int, repeats: int, profile: bool
) -> dict[str, Any]:
    """Floor and per-step figures for one backend."""
    with fresh_store_config(backend) as config:
        app = ss.App(**config)
        try:
            flow, empty = define(app)
            prepare(app.store)
            ids = itertools.count()
            floor_ids = itertools.count(0, FLOOR_COMMITS)
            commit_ms(app.store, 50, start_id=-1000)  # warm the connection
            workflows_ms(app, flow, steps, 3, ids)  # warm every query
            workflows_ms(app, empty, 0, 3, ids)
            floors: list[float] = []
            step_figures: list[float] = []
            ratios: list[float] = []
            for _ in range(repeats):
                # Floor and steps side by side in each run: the machine is
                # shared, so only ratios from one moment compare.
                floor = commit_ms(app.store, FLOOR_COMMITS, next(floor_ids))
                full = workflows_ms(app, flow, steps, workflows, ids)
                bare = workflows_ms(app, empty, 0, workflows, ids)
                floor = (
                    floor + commit_ms(app.store, FLOOR_COMMITS, next(floor_ids))
                ) / 2
                step = (full - bare) / steps
                floors.append(floor)
                step_figures.append(step)
                ratios.append(step / floor)
            if profile:
                profiler = cProfile.Profile()
                profiler.enable()
                workflows_ms(app, flow, steps, workflows, ids)
                profiler.disable()
                progress(f"profile of {workflows} x {steps} steps on {backend}")
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        finally:
            app.close()
    return {
        "floor_ms": summary(floors),
        "step_ms": summary(step_figures),
        "ratio": summary(ratios),
    }


def summary(figures: list[float]) -> dict[str, float]:
    """Median, min and max of one series."""
    return {
        "median": statistics.median(figures),
        "min": min(figures),
        "max": max(figures),
        "runs": len(figures),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--workflows", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default=None)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    backends = [args.backend] if args.backend else ["sqlite", "postgresql"]
    results: dict[str, Any] = {}
    for backend in backends:
        progress(f"step cost on {backend}: {args.repeats} runs")
        results[backend] = measure(
            backend, args.steps, args.workflows, args.repeats, args.profile
        )
    rows = [
        [
            backend,
            figures["floor_ms"]["median"],
            figures["step_ms"]["median"],
            figures["ratio"]["median"],
            figures["ratio"]["min"],
        ]
        for backend, figures in results.items()
    ]
    print_table(
        "Per-step cost (trivial step, one checkpoint) against the commit floor",
        ["backend", "floor ms", "step ms", "ratio median", "ratio min"],
        rows,
    )
    path = write_results(
        "step_cost",
        {
            "steps_per_workflow": args.steps,
            "workflows_per_run": args.workflows,
            "results": results,
        },
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
