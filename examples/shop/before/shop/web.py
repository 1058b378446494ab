"""The shop's HTTP API (Flask)."""

import functools
import secrets
import threading

from flask import Flask, abort, jsonify, request

from shop import db, mailer, orders
from shop.clients import payments

app = Flask(__name__)

# Logged-in users: session token -> {"user_id": ..., "email": ...}
SESSIONS = {}

# Shopping carts: user id -> list of SKUs.
CARTS = {}


@functools.lru_cache(maxsize=1024)
def get_product(sku):
    return db.find_product(sku)


def current_user():
    token = request.headers.get("X-Session", "")
    user = SESSIONS.get(token)
    if user is None:
        abort(401)
    return user


@app.post("/login")
def login():
    body = request.get_json(force=True)
    token = secrets.token_hex(16)
    SESSIONS[token] = {"user_id": body["user_id"], "email": body["email"]}
    return jsonify(token=token)


@app.post("/cart/items")
def add_to_cart():
    user = current_user()
    sku = request.get_json(force=True)["sku"]
    if get_product(sku) is None:
        abort(404)
    CARTS.setdefault(user["user_id"], []).append(sku)
    return jsonify(items=CARTS[user["user_id"]])


@app.get("/cart")
def show_cart():
    user = current_user()
    items = CARTS.get(user["user_id"], [])
    total = sum(get_product(sku)["cents"] for sku in items)
    return jsonify(items=items, cents=total)


@app.post("/checkout")
def checkout():
    user = current_user()
    body = request.get_json(force=True)
    items = CARTS.pop(user["user_id"], [])
    if not items:
        abort(400)
    cents = sum(get_product(sku)["cents"] for sku in items)
    order_id = db.create_order(
        user["user_id"], items, cents, body["card_token"], body["address"]
    )
    threading.Thread(
        target=orders.cancel_if_unpaid, args=(order_id,), daemon=True
    ).start()
    return jsonify(order_id=order_id, cents=cents, status="pending_payment")


@app.post("/webhooks/payment-authorized")
def payment_authorized():
    """The payment provider confirms the customer authorised the payment."""
    event = request.get_json(force=True)
    order = db.get_order(event["order_id"])
    if order is None:
        abort(404)
    charge_id = payments.charge(order["card_token"], order["cents"])
    db.set_status(order["id"], "paid", charge_id=charge_id)
    mailer.send_receipt(event["email"], order["id"], order["cents"])
    orders.ORDER_QUEUE.put(order["id"])
    return jsonify(ok=True)


@app.post("/orders/<order_id>/approval")
def approve(order_id):
    orders.APPROVALS[order_id] = bool(request.get_json(force=True)["approved"])
    return jsonify(ok=True)


@app.get("/orders/<order_id>")
def show_order(order_id):
    order = db.get_order(order_id)
    if order is None:
        abort(404)
    return jsonify(id=order["id"], status=order["status"], cents=order["cents"])


if __name__ == "__main__":
    orders.start_worker()
    app.run(port=8000)
