"""A real-engine app for the dev server's chaos test (store from the env)."""

from __future__ import annotations

import stateshift as ss

app = ss.App()


@app.step()
def add(a: int, b: int) -> int:
    return a + b


@app.workflow(name="sum3")
def sum3(a: int, b: int, c: int) -> int:
    partial = add(a, b)
    ss.sleep(0.2)
    return add(partial, c)
