"""Turn the suite's results into tables, target checks and docs/benchmarks.md.

Every table leads with ratios measured in the same run (stateshift against
DBOS, and against the commit floor of the backend): on a shared, noisy
machine they hold steadier than absolute times, which follow them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BACKENDS = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool = False
    per_floor: bool = False  # meaningful as a multiple of one commit


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    metrics: tuple[Metric, ...]
    sides: tuple[str, ...] = ("stateshift", "dbos")
    backends: tuple[str, ...] = BACKENDS
    notes: str = ""
    extra: dict[str, str] = field(default_factory=dict)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "one_step",
        "One-step workflow, started and finished one after another",
        (
            Metric("p50_ms", "latency p50, ms", per_floor=True),
            Metric("p99_ms", "latency p99, ms", per_floor=True),
        ),
        notes="stateshift: `app.run(wf, x)`; DBOS: calling the workflow function.",
    ),
    Workload(
        "ten_step",
        "Ten-step workflow",
        (
            Metric("per_step_ms", "cost per extra step, ms", per_floor=True),
            Metric("workflow_ms", "ten-step workflow, ms", per_floor=True),
        ),
        notes="Cost per step = (ten-step p50 − one-step p50) / 9, the two run"
        " interleaved.",
    ),
    Workload(
        "queue",
        "One-step workflows through a queue",
        (
            Metric("wf_per_s_1w", "workflows/s, one worker", higher_is_better=True),
            Metric("wf_per_s_2w", "workflows/s, two workers", higher_is_better=True),
        ),
        notes="From the first enqueue until the last workflow is done; worker"
        " processes are started (and ready) before. stateshift:"
        ' `app.queue("bench").enqueue(workflow, x)`, each worker calling'
        " `app.run_until_idle()` in a loop; DBOS: `DBOSClient.enqueue`, its"
        " queue polling every 50 ms. How many workflows each side runs is in"
        " [Sizes](#sizes).",
    ),
    Workload(
        "timers",
        "Suspended workflows waiting on timers",
        (
            Metric("idle_small_ms", "tick finding nothing due, few waiting, ms"),
            Metric("idle_large_ms", "tick finding nothing due, many waiting, ms"),
            Metric("wake_small_ms", "tick waking 100, few waiting, ms"),
            Metric("wake_large_ms", "tick waking 100, many waiting, ms"),
        ),
        notes="'Few' and 'many' are the two sizes of the run (`timers_small` and"
        " `timers_large` in [Sizes](#sizes)). A tick runs the woken workflows"
        " to completion. DBOS keeps a"
        " sleeping workflow (`DBOS.sleep`) in a live thread, so its"
        " counterpart here is a delayed enqueue, and its tick is one pass of"
        " its own delayed-to-enqueued transition and queue claim, driven by hand.",
    ),
    Workload(
        "crash",
        "Crash recovery: workflows interrupted by kill -9",
        (
            Metric("recovery_s", "restart until all complete, s"),
            Metric("in_process_s", "same, from inside the restarted process, s"),
        ),
        notes="The worker is killed with SIGKILL while workflows sit in their"
        " second step (DBOS: all of them, in threads; stateshift: the one its"
        " worker was running, the rest still pending). A new process with the"
        " same worker (executor) id then recovers them; the time includes its"
        " interpreter start and imports.",
    ),
    Workload(
        "idempotent",
        "Idempotent handler call over a plain call",
        (
            Metric("first_ms", "first call of a key, ms", per_floor=True),
            Metric("repeat_ms", "repeated key, ms", per_floor=True),
            Metric("plain_us", "plain call, µs"),
        ),
        notes="stateshift: `@app.idempotent`; DBOS: a step-less workflow started"
        " with `SetWorkflowID(key)`, its idempotency mechanism.",
    ),
    Workload(
        "state",
        "State get / put / update",
        (
            Metric("put_ms", "put (new key), ms", per_floor=True),
            Metric("get_ms", "get, ms", per_floor=True),
            Metric("update_ms", "get + put with expected version, ms", per_floor=True),
        ),
        sides=("stateshift",),
        notes="DBOS has no versioned key-value state to compare with.",
    ),
    Workload(
        "entity",
        "Entity operations, contended and not",
        (
            Metric("uncontended_ms", "operation, one caller, ms", per_floor=True),
            Metric("contended_ms", "operation, two callers on one key, ms"),
        ),
        sides=("stateshift",),
        notes="DBOS has no entities to compare with.",
    ),
    Workload(
        "cold_start",
        "Cold start",
        (
            Metric("import_ms", "import, ms"),
            Metric("ready_ms", "import + app + first handler ready, ms"),
        ),
        sides=("stateshift", "dbos", "temporalio"),
        backends=("sqlite",),
        notes="In fresh interpreters, from before the first import; 'ready' opens"
        " an existing SQLite database (DBOS: `DBOS.launch()`).",
    ),
)

BY_NAME = {w.name: w for w in WORKLOADS}


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def figure(answer: dict[str, Any] | None, key: str) -> dict[str, float] | None:
    if not answer or not answer.get("available"):
        return None
    found: dict[str, float] | None = answer["metrics"].get(key)
    return found


def spread(summary: dict[str, float] | None) -> str:
    if summary is None:
        return "—"
    low, high = fmt(summary["min"]), fmt(summary["max"])
    return f"{fmt(summary['median'])} ({low}–{high})"


def advantage(
    ours: dict[str, float] | None, theirs: dict[str, float] | None, metric: Metric
) -> float | None:
    """How many times better stateshift is than the other side (>1: better)."""
    if ours is None or theirs is None or ours["median"] <= 0 or theirs["median"] <= 0:
        return None
    if metric.higher_is_better:
        return ours["median"] / theirs["median"]
    return theirs["median"] / ours["median"]


def per_floor(summary: dict[str, float] | None, floor_ms: float | None) -> float | None:
    if summary is None or not floor_ms:
        return None
    return summary["median"] / floor_ms


def times(value: float | None) -> str:
    return "—" if value is None else f"{fmt(value)}×"


def why_missing(answer: dict[str, Any] | None) -> str | None:
    if answer is None:
        return None
    if not answer.get("available"):
        return str(answer.get("reason", "not available"))
    return None


def workload_rows(payload: dict[str, Any], workload: Workload) -> list[list[str]]:
    """Rows of one workload's table, ratios first."""
    rows = []
    others = [s for s in workload.sides if s != "stateshift"]
    for backend in workload.backends:
        answers = payload["workloads"].get(workload.name, {}).get(backend)
        if answers is None:
            continue
        floor_ms = payload["floor"].get(backend, {}).get("median")
        for metric in workload.metrics:
            ours = figure(answers.get("stateshift"), metric.key)
            theirs = [figure(answers.get(s), metric.key) for s in others]
            if ours is None and all(t is None for t in theirs):
                continue
            row = [backend, metric.label]
            row += [times(advantage(ours, t, metric)) for t in theirs]
            if any(m.per_floor for m in workload.metrics):
                ratio = per_floor(ours, floor_ms) if metric.per_floor else None
                row.append(times(ratio))
            row.append(spread(ours))
            row += [spread(t) for t in theirs]
            rows.append(row)
    return rows


def workload_header(workload: Workload) -> list[str]:
    others = [s for s in workload.sides if s != "stateshift"]
    header = ["backend", "figure"]
    header += [f"stateshift vs {'DBOS' if s == 'dbos' else s}" for s in others]
    if any(m.per_floor for m in workload.metrics):
        header.append("stateshift ÷ floor")
    header.append("stateshift median (min–max)")
    header += [f"{'DBOS' if s == 'dbos' else s} median (min–max)" for s in others]
    return header
