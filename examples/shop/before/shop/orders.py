"""Fulfilment: a background worker ships paid orders, one at a time."""

import json
import logging
import queue
import threading
import time

from shop import db, settings
from shop.clients import inventory, shipping

logger = logging.getLogger(__name__)

# Paid orders waiting to be shipped, handed over by the payment webhook.
ORDER_QUEUE = queue.Queue()

# Manager decisions on large orders: order id -> approved?
APPROVALS = {}

UNPAID_TIMEOUT_SECONDS = 30 * 60


def start_worker():
    worker = threading.Thread(target=_work_forever, name="fulfilment", daemon=True)
    worker.start()
    return worker


def _work_forever():
    while True:
        order_id = ORDER_QUEUE.get()
        try:
            fulfil(order_id)
        except Exception:
            logger.exception("could not fulfil order %s", order_id)


def fulfil(order_id):
    order = db.get_order(order_id)
    if order["cents"] > settings.APPROVAL_LIMIT_CENTS:
        wait_for_approval(order_id)
        if not APPROVALS.pop(order_id):
            db.set_status(order_id, "rejected")
            return

    for sku in order["items"].split(","):
        inventory.reserve(sku, 1)
    shipping.create_shipment(order_id, order["address"])
    db.set_status(order_id, "shipped")
    log_order(order_id, "shipped")


def wait_for_approval(order_id):
    while order_id not in APPROVALS:
        time.sleep(5)


def cancel_if_unpaid(order_id):
    """Started when an order is placed: give the customer 30 minutes to pay."""
    time.sleep(UNPAID_TIMEOUT_SECONDS)
    order = db.get_order(order_id)
    if order and order["status"] == "pending_payment":
        db.set_status(order_id, "cancelled")
        log_order(order_id, "cancelled")


def log_order(order_id, status):
    with open(settings.ORDER_LOG, "a") as log_file:
        log_file.write(
            json.dumps({"order": order_id, "status": status, "at": time.time()}) + "\n"
        )
