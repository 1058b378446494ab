"""Run the benchmark suite: stateshift, DBOS and the commit floor, side by side.

Run: ``make bench`` (or ``python -m bench`` inside ``.venv-bench``). Every
workload runs for each library and backend in a fresh process; the floor is
measured first; last, every workload with an unmet target gets a profile of
its stateshift side (``bench/profile.py``) for the docs' "where the time
goes" lines. A full run writes ``bench/results/suite.json`` and renders
``docs/benchmarks.md``; ``--quick`` and partial runs write
``bench/results/suite-partial.json`` and leave the docs alone unless
``--docs`` is given.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    POSTGRES_URL,
    fresh_store_config,
    load_average,
    machine,
    progress,
)
from bench.floor import measure_floor
from bench.harness import ROOT, child_env, sizes_of
from bench.render import markdown, print_all
from bench.report import BACKENDS, WORKLOADS
from bench.targets import check_all

DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "bench" / "results"
CHILD_TIMEOUT_S = 900
MODULES = {"stateshift": "bench.stateshift_side", "dbos": "bench.dbos_side"}


def run_child(args: list[str]) -> dict[str, Any]:
    """Run one child; its last line of standard output is its JSON answer."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", *args],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=child_env(),
            timeout=CHILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {"available": False, "reason": f"timed out after {CHILD_TIMEOUT_S} s"}
    lines = done.stdout.strip().splitlines()
    try:
        answer: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        answer = {"available": False, "reason": f"crashed (exit {done.returncode})"}
    return answer


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def side_answer(side: str, workload: str, backend: str, scale: str) -> dict[str, Any]:
    if side == "dbos" and not installed("dbos"):
        return {"available": False, "reason": "dbos is not installed (make bench)"}
    progress(f"{workload} / {backend} / {side}")
    started = time.perf_counter()
    if workload == "cold_start":
        answer = run_child(["bench.cold", side, scale])
    else:
        args = [MODULES[side], workload, "--backend", backend, "--scale", scale]
        answer = run_child(args)
        if str(answer.get("reason", "")).startswith(("failed", "crashed")):
            # The database is shared: another user's restart or terminated
            # connection fails a run now and then. One more try, said so.
            progress(f"{workload} / {backend} / {side}: retrying ({answer['reason']})")
            first = answer["reason"]
            answer = run_child(args)
            answer["retried_after"] = first
    answer["elapsed_s"] = round(time.perf_counter() - started, 1)
    progress(f"{workload} / {backend} / {side}: {answer['elapsed_s']} s")
    return answer


def floors(backends: list[str], scale: str) -> dict[str, Any]:
    from stateshift.config import load_settings
    from stateshift.store import open_store

    commits, repeats = (200, 3) if scale == "quick" else (500, 5)
    results = {}
    for backend in backends:
        progress(f"commit floor on {backend}")
        with fresh_store_config(backend) as config:
            store = open_store(load_settings(config))
            try:
                results[backend] = measure_floor(store, commits, repeats)
            finally:
                store.close()
    return results


PROFILED = (
    "one_step",
    "ten_step",
    "queue",
    "timers",
    "crash",
    "idempotent",
    "cold_start",
)


def profiles(payload: dict[str, Any], scale: str) -> dict[str, Any]:
    """A cProfile of the stateshift side of each workload with an unmet target."""
    unmet = {
        (c.workload, c.backend)
        for c in check_all(payload)
        if c.met is False and c.workload in PROFILED
    }
    found: dict[str, Any] = {}
    for workload, backend in sorted(unmet):
        progress(f"profile of {workload} / {backend}")
        args = ["bench.profile", workload, "--scale", scale]
        if backend in BACKENDS:
            args += ["--backend", backend]
        found.setdefault(workload, {})[backend] = run_child(args)
    return found


def versions() -> dict[str, str]:
    found = {}
    for package in ("stateshift", "dbos", "temporalio", "SQLAlchemy", "psycopg"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL) as connection:
            row = connection.execute("SHOW server_version").fetchone()
            found["PostgreSQL server"] = str(row[0]) if row else "?"
    except Exception as error:  # the report says so instead of failing
        found["PostgreSQL server"] = f"unreachable ({error.__class__.__name__})"
    return found


def main() -> None:
    names = [w.name for w in WORKLOADS]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="WORKLOAD",
        help=f"run only this workload (repeatable): {', '.join(names)}",
    )
    parser.add_argument("--backend", choices=BACKENDS, help="run only this backend")
    parser.add_argument("--docs", type=Path, help="render the markdown here")
    args = parser.parse_args()
    scale = "quick" if args.quick else "full"
    chosen = [w for w in WORKLOADS if not args.only or w.name in args.only]
    backends = [args.backend] if args.backend else list(BACKENDS)
    complete = scale == "full" and not args.only and not args.backend

    started = time.perf_counter()
    payload: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(),
        "scale": scale,
        "sizes": {side: sizes_of(side, scale) for side in ("stateshift", "dbos")},
        "backends": backends,
        "floor": floors(backends, scale),
        "workloads": {},
    }
    for workload in chosen:
        for backend in [
            b
            for b in workload.backends
            if b in backends or workload.name == "cold_start"
        ]:
            payload["workloads"].setdefault(workload.name, {})[backend] = {
                side: side_answer(side, workload.name, backend, scale)
                for side in workload.sides
            }
    payload["profiles"] = profiles(payload, scale)
    payload["elapsed_s"] = time.perf_counter() - started
    payload["machine"]["load average at end (1, 5, 15 min)"] = load_average()

    RESULTS.mkdir(exist_ok=True)
    result = RESULTS / ("suite.json" if complete else "suite-partial.json")
    result.write_text(json.dumps(payload, indent=2) + "\n")
    print_all(payload)
    print(f"\nwrote {result.relative_to(ROOT)}")
    docs = DOCS if complete else args.docs
    if docs is not None:
        docs.parent.mkdir(parents=True, exist_ok=True)
        docs.write_text(markdown(payload))
        print(f"wrote {docs}")


if __name__ == "__main__":
    main()
