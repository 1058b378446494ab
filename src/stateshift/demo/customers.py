"""The demo's simulated customers: what they buy, and what managers decide.

Everything here is drawn up front from the seed, so one seed gives the same
customers, carts and approval decisions on every run; only the timing of
kills and of the flaky services differs between runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["CATALOGUE", "Decision", "Plan", "PlannedOrder", "plan_orders"]

CATALOGUE: dict[str, tuple[int, int]] = {
    # sku: (price in cents, stock at the start)
    **{f"book-{n:02d}": (1_500 + 250 * n, 1_000) for n in range(12)},
    **{f"lamp-{n:02d}": (4_900 + 900 * n, 1_000) for n in range(6)},
    "sofa-oak": (64_000, 1_000),
    "piano-upright": (250_000, 1_000),
    "bike-cargo": (52_000, 1_000),
    # Scarce: some orders find them sold out and are cancelled untouched.
    "print-signed": (9_900, 4),
    "vase-glass": (7_500, 6),
}
BIG_ITEMS = ("sofa-oak", "piano-upright", "bike-cargo")
SCARCE_ITEMS = ("print-signed", "vase-glass")
SMALL_ITEMS = tuple(
    sku for sku in CATALOGUE if sku not in BIG_ITEMS and sku not in SCARCE_ITEMS
)


class Decision(StrEnum):
    """What a manager does with a large order."""

    APPROVE = "approve"
    """Approves at once."""
    REFUSE = "refuse"
    """Refuses at once."""
    APPROVE_LATER = "approve after 6 h"
    """Approves after six hours, well inside the 48 hours."""
    TOO_LATE = "approve after 49 h"
    """Approves after the order was cancelled: the approval is refused."""
    NEVER = "never"
    """Never answers: the order is cancelled after 48 hours."""


@dataclass(frozen=True)
class PlannedOrder:
    """One customer's visit."""

    order_id: str
    customer: str
    region: str
    items: tuple[tuple[str, int], ...]
    decision: Decision
    """What happens if the order needs an approval."""
    late: bool
    """A late shopper: arrives after the clock jumps, still waits at the end."""

    @property
    def cents(self) -> int:
        """The order's total."""
        return sum(CATALOGUE[sku][0] * quantity for sku, quantity in self.items)


@dataclass(frozen=True)
class Plan:
    """All visits of one run."""

    orders: tuple[PlannedOrder, ...]

    @property
    def main_wave(self) -> list[PlannedOrder]:
        return [o for o in self.orders if not o.late]

    @property
    def late_wave(self) -> list[PlannedOrder]:
        return [o for o in self.orders if o.late]


def plan_orders(count: int, seed: int) -> Plan:
    """``count`` customer visits drawn from ``seed``."""
    if count < 1:
        raise ValueError("the demo needs at least one order")
    rng = random.Random(seed)
    late = max(1, count // 30) if count >= 10 else 0
    decisions = list(Decision)
    weights = (45, 15, 20, 10, 10)
    orders = []
    for index in range(count):
        is_late = index >= count - late
        lines: dict[str, int] = {}
        for _ in range(rng.randint(1, 3)):
            sku = rng.choice(SMALL_ITEMS)
            lines[sku] = lines.get(sku, 0) + rng.randint(1, 2)
        if rng.random() < 0.08:
            lines[rng.choice(SCARCE_ITEMS)] = rng.randint(1, 2)
        if is_late or rng.random() < 0.3:
            lines[rng.choice(BIG_ITEMS)] = 1
        orders.append(
            PlannedOrder(
                order_id=f"order-{index:05d}",
                customer=f"customer-{index:05d}",
                region="eu" if rng.random() < 0.4 else "us",
                items=tuple(sorted(lines.items())),
                decision=(
                    Decision.NEVER if is_late else rng.choices(decisions, weights)[0]
                ),
                late=is_late,
            )
        )
    return Plan(tuple(orders))
