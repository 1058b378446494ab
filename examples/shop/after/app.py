"""The shop after the migration: every piece of state in the store.

The shop's code is :mod:`stateshift.demo.shop`, so that ``stateshift demo``
runs exactly this service from an installed package; this module wires it
to a store and to the outside services, as a deployment would.

* ``STATESHIFT_STORE`` picks the store (default ``./stateshift.db``); with
  ``[regions]`` and ``[residency]`` in ``stateshift.toml`` and
  ``STATESHIFT_REGION`` set, one deployment per region serves its own
  customers (see ``examples/shop/README.md``).
* The payment provider and the carrier here are the demo's simulations,
  kept in a database of their own (``SHOP_SERVICES_STORE``). A real
  deployment passes clients of the real services instead: anything with
  the methods of :class:`stateshift.demo.shop.Payments` and
  :class:`stateshift.demo.shop.Carrier`.

Try it::

    python examples/shop/after/app.py       # one order, run to the end
    cd examples/shop/after && stateshift dev app:app   # the HTTP API

Deploy it with ``lambda_function.py`` (AWS Lambda) or ``main.py`` (Cloud
Functions), both in this folder; see ``examples/shop/README.md``.
"""

from __future__ import annotations

import os
import time

import stateshift as ss
from stateshift.demo.shop import register
from stateshift.demo.simulated import Carrier, Flakiness, PaymentProvider

app = ss.App()
services = ss.App(os.environ.get("SHOP_SERVICES_STORE", "sqlite:///shop-services.db"))
provider = PaymentProvider(services, Flakiness(), seed=0)
carrier = Carrier(services, Flakiness(), seed=0)
shop = register(app, provider, carrier)
checkout = shop.checkout
on_payment_webhook = shop.on_payment_webhook


def main() -> None:
    """Fill a cart, check it out, and run the work until the order is done."""
    stock = app.state("stock")
    for sku in ("book-01", "lamp-02"):
        if stock.get(sku) is None:
            stock.put(sku, 100)
    cart = shop.cart("customer-1")
    cart.add("book-01", 2, 1_750, "us")
    cart.add("lamp-02", 1, 6_700, "us")
    order_id = f"order-{ss.uuid4().hex[:8]}"
    shop.place_order("customer-1", order_id)
    # A flaky provider's longer retry waits are durable timers: run until done.
    while not app.status(order_id).status.finished:
        app.run_until_idle()
        time.sleep(0.1)
    print(order_id, app.status(order_id).status, app.status(order_id).result)


if __name__ == "__main__":
    main()
