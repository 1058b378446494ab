"""The targets of the benchmark issue, checked against one run's results.

Each check compares figures from the same run only. A check whose figures
are missing (a side not available yet) says "not measured", never "met".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.report import BY_NAME, advantage, figure, fmt, per_floor

# How much more DBOS's figure a workflow workload must be beaten by.
DBOS_FACTOR = {"sqlite": 10.0, "postgresql": 5.0}
# Workflow workloads held to DBOS_FACTOR: (workload, metric).
WORKFLOW_FIGURES = (
    ("one_step", "p50_ms"),
    ("ten_step", "per_step_ms"),
    ("queue", "wf_per_s_1w"),
    ("queue", "wf_per_s_2w"),
    ("timers", "wake_large_ms"),
    ("crash", "recovery_s"),
)
# A tick must not grow with the number waiting; this allows for noise.
GROWTH_ALLOWED = 1.5


@dataclass(frozen=True)
class Check:
    target: str
    backend: str
    measured: str
    met: bool | None  # None: not measured
    workload: str = ""  # whose stateshift side a profile explains

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**not met**", None: "not measured"}[self.met]


def answers(payload: dict[str, Any], workload: str, backend: str) -> dict[str, Any]:
    found: dict[str, Any] = payload["workloads"].get(workload, {}).get(backend, {})
    return found


def ours(payload: dict[str, Any], workload: str, backend: str, key: str) -> Any:
    return figure(answers(payload, workload, backend).get("stateshift"), key)


def theirs(payload: dict[str, Any], workload: str, backend: str, key: str) -> Any:
    return figure(answers(payload, workload, backend).get("dbos"), key)


def floor_check(
    payload: dict[str, Any],
    backend: str,
    workload: str,
    key: str,
    limit: float,
    target: str,
) -> Check:
    ratio = per_floor(
        ours(payload, workload, backend, key),
        payload["floor"].get(backend, {}).get("median"),
    )
    if ratio is None:
        return Check(target, backend, "—", None, workload)
    measured = f"{fmt(ratio)}× the floor"
    return Check(target, backend, measured, ratio <= limit, workload)


def dbos_check(
    payload: dict[str, Any],
    backend: str,
    workload: str,
    key: str,
    factor: float,
    target: str,
) -> Check:
    metric = next(m for m in BY_NAME[workload].metrics if m.key == key)
    better = advantage(
        ours(payload, workload, backend, key),
        theirs(payload, workload, backend, key),
        metric,
    )
    if better is None:
        return Check(target, backend, "—", None, workload)
    return Check(target, backend, f"{fmt(better)}× DBOS", better >= factor, workload)


def growth_check(payload: dict[str, Any], backend: str, kind: str) -> Check:
    target = f"timers: a tick {kind} does not grow with the number waiting"
    small = ours(payload, "timers", backend, f"{kind}_small_ms")
    large = ours(payload, "timers", backend, f"{kind}_large_ms")
    if small is None or large is None:
        return Check(target, backend, "—", None, "timers")
    ratio = large["median"] / small["median"]
    measured = f"many/few = {fmt(ratio)}×"
    return Check(target, backend, measured, ratio <= GROWTH_ALLOWED, "timers")


def check_all(payload: dict[str, Any]) -> list[Check]:
    checks = []
    for backend in payload["backends"]:
        checks.append(
            floor_check(
                payload,
                backend,
                "ten_step",
                "per_step_ms",
                1.3,
                "cost per step at most 1.3× the commit floor",
            )
        )
        checks.append(
            floor_check(
                payload,
                backend,
                "one_step",
                "p50_ms",
                4.0,
                "one-step workflow within four commit floors",
            )
        )
        factor = DBOS_FACTOR[backend]
        for workload, key in WORKFLOW_FIGURES:
            label = next(m.label for m in BY_NAME[workload].metrics if m.key == key)
            checks.append(
                dbos_check(
                    payload,
                    backend,
                    workload,
                    key,
                    factor,
                    f"{workload} ({label}) at least {fmt(factor)}× DBOS",
                )
            )
        checks.append(
            dbos_check(
                payload,
                backend,
                "crash",
                "recovery_s",
                5.0,
                "crash recovery in under a fifth of DBOS's time",
            )
        )
        checks.append(growth_check(payload, backend, "idle"))
        checks.append(growth_check(payload, backend, "wake"))
    checks.append(cold_check(payload))
    return checks


def cold_check(payload: dict[str, Any]) -> Check:
    target = "cold start (import + first handler ready) under a third of DBOS's import"
    cold = answers(payload, "cold_start", "sqlite")
    ready = figure(cold.get("stateshift"), "ready_ms")
    dbos_import = figure(cold.get("dbos"), "import_ms")
    if ready is None or dbos_import is None:
        return Check(target, "—", "—", None, "cold_start")
    share = ready["median"] / dbos_import["median"]
    measured = f"{fmt(share * 100)} % of DBOS's import"
    return Check(target, "—", measured, share < 1 / 3, "cold_start")
