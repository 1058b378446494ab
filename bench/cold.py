"""Cold start: what a fresh serverless instance pays before its first call.

Each figure is measured inside a fresh interpreter (``python -c``), from
before the first import to the point named, so the interpreter's own start
(the same for all) is left out. "Ready" means the library is imported, the
app is built with one workflow registered, and its store is open on a
database that already exists (the steady state of a deployed function).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import progress
from bench.harness import Job, NotAvailable, child_env, summarize

_TIMER = "import time\n_t0 = time.perf_counter()\n"
_REPORT = "print(round((time.perf_counter() - _t0) * 1000.0, 3))\n"

STATESHIFT_IMPORT = "import stateshift\n"

STATESHIFT_READY = """\
import stateshift as ss
app = ss.App({url!r})

@app.step()
def add_one(x):
    return x + 1

@app.workflow()
def one_step(x):
    return add_one(x)

app.store.ensure_schema()
"""

DBOS_IMPORT = "import dbos\n"

DBOS_READY = """\
from dbos import DBOS
DBOS(config={{"name": "ssbench", "system_database_url": {url!r},
             "log_level": "WARNING"}})

@DBOS.step()
def add_one(x):
    return x + 1

@DBOS.workflow()
def one_step(x):
    return add_one(x)

DBOS.launch()
"""

TEMPORALIO_IMPORT = "import temporalio.client, temporalio.worker, temporalio.workflow\n"


def measure(body: str, runs: int) -> list[float]:
    """Milliseconds to run ``body`` in ``runs`` fresh interpreters."""
    figures = []
    for _ in range(runs):
        script = _TIMER + body + _REPORT
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip().splitlines()[-1])
        figures.append(float(done.stdout.strip().splitlines()[-1]))
    return figures


def stateshift_ready_available() -> bool:
    import stateshift as ss

    app = getattr(ss, "App", None)
    return app is not None and hasattr(app, "step") and hasattr(app, "workflow")


def run_side(side: str, job: Job) -> dict[str, Any]:
    """Cold-start figures of one side (``stateshift``, ``dbos``, ``temporalio``)."""
    runs = job.sizes["cold_runs"]
    with tempfile.TemporaryDirectory(prefix="ss-cold-") as folder:
        url = f"sqlite:///{Path(folder) / 'cold.db'}"
        if side == "stateshift":
            metrics = {"import_ms": summarize(measure(STATESHIFT_IMPORT, runs))}
            if stateshift_ready_available():
                ready = STATESHIFT_READY.format(url=url)
                measure(ready, 1)  # create the database first
                metrics["ready_ms"] = summarize(measure(ready, runs))
            return metrics
        if side == "dbos":
            ready = DBOS_READY.format(url=url) + "DBOS.destroy()\n"
            measure(ready, 1)
            return {
                "import_ms": summarize(measure(DBOS_IMPORT, runs)),
                "ready_ms": summarize(measure(DBOS_READY.format(url=url), runs)),
            }
        return {"import_ms": summarize(measure(TEMPORALIO_IMPORT, runs))}


def main() -> None:
    side, scale = sys.argv[1], sys.argv[2]
    job = Job("cold_start", "sqlite", scale)
    progress(f"cold start of {side}: {job.sizes['cold_runs']} fresh interpreters")
    try:
        answer: dict[str, Any] = {"available": True, "metrics": run_side(side, job)}
    except (ImportError, NotAvailable, RuntimeError) as error:
        answer = {"available": False, "reason": str(error)[:300]}
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
