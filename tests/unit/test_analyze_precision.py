"""Realistic, serverless-safe modules produce no findings at all.

Precision matters more than recall: each sample is the kind of code a
team writes after the migration, or code that only looks like a hazard.
"""

from __future__ import annotations

import textwrap

import pytest

from stateshift.analyze import analyze_source

STATESHIFT_SHOP = '''
"""The shop on stateshift: carts in a namespace, checkout as a saga."""

from datetime import timedelta

from flask import Flask, jsonify, request

import stateshift as ss
from shop.clients import inventory, payments, shipping

app = ss.App()
web = Flask(__name__)
carts = app.state("carts")
orders = app.state("orders")


@web.post("/cart/items")
def add_to_cart():
    user_id = request.headers["X-User"]
    sku = request.get_json(force=True)["sku"]
    item = carts.get(user_id)
    items = item.value["items"] if item else []
    carts.put(user_id, {"items": [*items, sku]},
              expected_version=item.version if item else None)
    return jsonify(items=[*items, sku])


@app.step(retry=ss.RetryPolicy(max_attempts=5))
def reserve(order: dict) -> str:
    return inventory.reserve(order["sku"], 1,
                             idempotency_key=ss.current().idempotency_key)


@app.step()
def release(reservation_id: str) -> None:
    inventory.release(reservation_id)


@app.step(retry=ss.RetryPolicy(max_attempts=5), timeout=30)
def charge(order: dict) -> str:
    return payments.charge(order["card_token"], order["cents"],
                           idempotency_key=ss.current().idempotency_key)


@app.step()
def refund(charge_id: str) -> None:
    payments.refund(charge_id, idempotency_key=ss.current().idempotency_key)


@app.step()
def ship(order: dict) -> None:
    shipping.create_shipment(order["id"], order["address"],
                             idempotency_key=ss.current().idempotency_key)


@app.workflow()
def checkout(order: dict) -> dict:
    if order["cents"] > 100_000:
        answer = ss.wait_for_event("approval", timeout=timedelta(days=2))
        if not answer["approved"]:
            return {"status": "rejected"}
    with ss.Saga() as saga:
        reservation = reserve(order)
        saga.compensate(release, reservation)
        charge_id = charge(order)
        saga.compensate(refund, charge_id)
        ship(order)
    app.publish("order-shipped", {"order_id": order["id"]})
    return {"status": "shipped"}


@app.workflow()
def cancel_if_unpaid(order_id: str) -> None:
    ss.sleep(timedelta(minutes=30))


@web.post("/webhooks/payment-authorized")
def payment_authorized():
    event = request.get_json(force=True)
    handle = app.start(checkout, event["order"], workflow_id=f"order-{event['id']}")
    return jsonify(workflow_id=handle.workflow_id)


@web.post("/orders/<order_id>/approval")
def approve(order_id):
    app.send_event(f"order-{order_id}", "approval", request.get_json(force=True))
    return jsonify(ok=True)


@app.idempotent(key=lambda event: event["order_id"], ttl=86_400)
def send_shipped_mail(event: dict) -> None:
    mailer.send(to=event["email"], subject="Shipped")
'''

LAMBDA_SERVICE = """
import functools
import json
import logging
import os
import tempfile

import boto3

logger = logging.getLogger(__name__)
TABLE_NAME = os.environ.get("TABLE", "orders")
s3 = boto3.client("s3")


@functools.cache
def table():
    return boto3.resource("dynamodb").Table(TABLE_NAME)


@functools.lru_cache(maxsize=128)
def tax_rate(country: str) -> float:
    return {"DE": 0.19, "FR": 0.20}.get(country, 0.0)


def lambda_handler(event, context):
    body = json.loads(event["body"])
    total = round(body["cents"] * (1 + tax_rate(body["country"])))
    with tempfile.NamedTemporaryFile("w", suffix=".json") as scratch:
        json.dump(body, scratch)
    logger.info("order total %s", total, extra={"event": "order.total"})
    return {"statusCode": 200, "body": json.dumps({"total": total})}
"""

LIBRARY_STYLE = '''
"""Helpers that look like hazards and are not."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

__all__ = ["Registry", "parse_all", "slugify"]
__all__ += ["Timer"]

_SLUG = re.compile(r"[^a-z0-9]+")
_lock = threading.Lock()
_PLUGINS = {}


def plugin(name):
    def register(cls):
        _PLUGINS[name] = cls
        return cls
    return register


@plugin("json")
class JsonPlugin:
    items: list = []


def slugify(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")


def parse_all(documents):
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(slugify, documents))


@dataclass
class Registry:
    entries: dict = field(default_factory=dict)

    def add(self, key, value):
        self.entries[key] = value


class Timer:
    def __enter__(self):
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.elapsed = time.monotonic() - self.started
        return ", ".join(["done", str(self.elapsed)])


def wait_for_port(sock, attempts=50):
    for _ in range(attempts):
        if sock.connect_ex(("127.0.0.1", 5432)) == 0:
            return True
        time.sleep(0.1)
    return False
'''

CLI_SCRIPT = """
import argparse
import json
import sys


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--output")
    args = parser.parse_args(argv)
    report = {"ok": True}
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(report, handle)
    else:
        json.dump(report, sys.stdout)
    return 0
"""


@pytest.mark.parametrize(
    "source",
    [STATESHIFT_SHOP, LAMBDA_SERVICE, LIBRARY_STYLE, CLI_SCRIPT],
    ids=["stateshift-shop", "lambda-service", "library-style", "cli-script"],
)
def test_safe_module_has_no_findings(source: str) -> None:
    findings = analyze_source(textwrap.dedent(source), "sample.py")
    assert [(f.rule_id, f.line, f.message) for f in findings] == []
