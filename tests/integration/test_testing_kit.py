"""``stateshift.testing``: a clock to jump, and replay checks for CI."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss
from stateshift.testing import (
    TestApp,
    export_history,
    load_histories,
    replay_check,
    save_histories,
)


@pytest.fixture
def app() -> Iterator[TestApp]:
    application = TestApp(start=1_700_000_000.0)
    yield application
    application.close()


def test_a_thirty_day_sleep_is_tested_in_milliseconds(app: TestApp) -> None:
    @app.step()
    def send_reminder(user: str) -> str:
        return f"reminded {user}"

    @app.workflow()
    def trial(user: str) -> str:
        ss.sleep(timedelta(days=30))
        return send_reminder(user)  # type: ignore[no-any-return]

    began = time.monotonic()
    app.run(trial, "u1", workflow_id="trial-u1")
    app.advance(timedelta(days=29))
    assert app.status("trial-u1").status is ss.WorkflowStatus.WAITING
    app.advance(timedelta(days=1))
    assert app.status("trial-u1").result == "reminded u1"
    assert time.monotonic() - began < 2.0


def test_advance_stops_at_every_timer_on_the_way(app: TestApp) -> None:
    @app.workflow()
    def daily() -> list[str]:
        seen = []
        for _ in range(3):
            ss.sleep(timedelta(days=1))
            seen.append(ss.now().isoformat())
        return seen

    app.run(daily, workflow_id="d")
    app.advance(timedelta(days=10))
    start = datetime.fromtimestamp(1_700_000_000.0, ss.now().tzinfo)
    expected = [(start + timedelta(days=n)).isoformat() for n in (1, 2, 3)]
    assert app.status("d").result == expected
    assert app.manual_clock() == 1_700_000_000.0 + 10 * 86_400


def test_a_temporary_store_is_removed_on_close() -> None:
    application = TestApp()
    path = Path(application.settings.store.removeprefix("sqlite:///"))
    application.state("n").put("k", 1)
    assert path.exists()
    application.close()
    assert not path.parent.exists()


def define(app: ss.App, variant: str) -> Callable[..., Any]:
    """The order workflow as first written, and as later changed."""

    @app.step(name="reserve")
    def reserve(item: str) -> str:
        return f"r-{item}"

    @app.step(name="charge")
    def charge(item: str) -> str:
        return f"c-{item}"

    @app.step(name="bill")
    def bill(item: str) -> str:
        return f"b-{item}"

    @app.step(name="notify")
    def notify(item: str) -> str:
        return f"n-{item}"

    @app.workflow(name="order")
    def order(item: str) -> list[str]:
        if variant == "renamed":
            done = [reserve(item), bill(item)]
        elif variant == "shortened":
            return [reserve(item)]
        else:
            done = [reserve(item), charge(item)]
        if variant == "patched" and ss.patched("notify"):
            done.append(notify(item))
        answer = ss.wait_for_event("shipped")
        return [*done, str(answer)]

    return order


def recorded(tmp_path: Path) -> Path:
    original = TestApp()
    order = define(original, "original")
    original.run(order, "book", workflow_id="o-done")
    original.send_event("o-done", "shipped", "yes")
    original.run_until_idle()
    original.run(order, "pen", workflow_id="o-waiting")
    assert original.status("o-waiting").status is ss.WorkflowStatus.WAITING
    path = tmp_path / "histories.json"
    save_histories(original, ["o-done", "o-waiting"], path)
    original.close()
    return path


@pytest.mark.parametrize("variant", ["original", "patched"])
def test_unchanged_or_patched_code_replays_recorded_histories(
    tmp_path: Path, variant: str
) -> None:
    histories = load_histories(recorded(tmp_path))
    changed = TestApp()
    define(changed, variant)
    results = replay_check(changed, histories)
    assert [r.ok for r in results] == [True, True]
    changed.close()


def test_a_renamed_step_fails_the_check_naming_both_steps(tmp_path: Path) -> None:
    histories = load_histories(recorded(tmp_path))
    changed = TestApp()
    define(changed, "renamed")
    with pytest.raises(ss.NonDeterminismError) as raised:
        replay_check(changed, histories)
    message = str(raised.value)
    assert "o-done" in message and "o-waiting" in message
    assert "'bill'" in message and "'charge'" in message
    # The check ran in a scratch store: the app's own store is untouched.
    assert changed.list_workflows() == []
    changed.close()


def test_a_removed_step_fails_the_check(tmp_path: Path) -> None:
    histories = load_histories(recorded(tmp_path))
    changed = TestApp()
    define(changed, "shortened")
    results = replay_check(changed, histories, raise_on_failure=False)
    assert [r.ok for r in results] == [False, False]
    assert "stopped" in results[0].detail
    changed.close()


def test_exported_histories_are_readable_json(app: TestApp, tmp_path: Path) -> None:
    order = define(app, "original")
    app.run(order, "cup", workflow_id="o-1")
    history = export_history(app, "o-1")
    assert history["name"] == "order"
    assert [s["name"] for s in history["steps"]] == ["reserve", "charge", "shipped"]
    assert '"r-cup"' in history["steps"][0]["output"]["text"]
    with pytest.raises(ss.WorkflowNotFound):
        export_history(app, "nope")
    (tmp_path / "bad.json").write_text("[{}]")
    with pytest.raises(ValueError):
        load_histories(tmp_path / "bad.json")
