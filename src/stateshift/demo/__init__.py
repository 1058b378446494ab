"""``stateshift demo``: the example shop, migrated, run under adversity.

:mod:`stateshift.demo.shop` is the shop on stateshift (the canonical code of
``examples/shop/after``); :mod:`stateshift.demo.runner` drives it with
simulated customers, worker kills, duplicate webhooks, a flaky payment
provider and late approvals; :mod:`stateshift.demo.report` checks that no
order was lost and no card charged twice. See ``docs/demo.md``.
"""

from __future__ import annotations

from stateshift.demo.report import Report
from stateshift.demo.runner import DemoOptions, run_demo

__all__ = ["DemoOptions", "Report", "run_demo"]
