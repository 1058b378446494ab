"""Each rule finds its hazard, and leaves the look-alike safe code alone."""

from __future__ import annotations

import textwrap

import pytest

from stateshift.analyze import analyze_source


def rule_ids(source: str) -> list[str]:
    return [f.rule_id for f in analyze_source(textwrap.dedent(source), "m.py")]


POSITIVE = {
    "SS101 cart dict": (
        "SS101",
        """
        CARTS = {}
        def add(user, sku):
            CARTS.setdefault(user, []).append(sku)
        """,
    ),
    "SS101 item assignment": (
        "SS101",
        """
        approvals: dict[str, bool] = {}
        def approve(order_id):
            approvals[order_id] = True
        """,
    ),
    "SS101 global counter": (
        "SS101",
        """
        request_count = 0
        def handle():
            global request_count
            request_count += 1
        """,
    ),
    "SS101 deque": (
        "SS101",
        """
        import collections
        recent = collections.deque(maxlen=10)
        def remember(x):
            recent.append(x)
        """,
    ),
    "SS102 lru_cache on a db read": (
        "SS102",
        """
        import functools
        @functools.lru_cache(maxsize=None)
        def price(sku):
            return db.execute("SELECT cents FROM products WHERE sku = ?", (sku,))
        """,
    ),
    "SS102 cache dict of an http read": (
        "SS102",
        """
        import requests
        _cache = {}
        def rate(currency):
            if currency not in _cache:
                _cache[currency] = requests.get(f"https://fx/{currency}").json()
            return _cache[currency]
        """,
    ),
    "SS103 session dict": (
        "SS103",
        """
        sessions = {}
        def login(token, user):
            sessions[token] = {"user": user}
        """,
    ),
    "SS103 filesystem backend": (
        "SS103",
        """
        from flask import Flask
        app = Flask(__name__)
        app.config["SESSION_TYPE"] = "filesystem"
        """,
    ),
    "SS104 open for append": (
        "SS104",
        """
        LOG = "orders.log"
        def log(line):
            with open(LOG, "a") as f:
                f.write(line)
        """,
    ),
    "SS104 path write_text": (
        "SS104",
        """
        from pathlib import Path
        def save(order_id, body):
            (Path("data") / f"{order_id}.json").write_text(body)
        """,
    ),
    "SS104 sqlite file": (
        "SS104",
        """
        import sqlite3
        def connect():
            return sqlite3.connect("app.db")
        """,
    ),
    "SS104 file log handler": (
        "SS104",
        """
        import logging
        handler = logging.FileHandler("app.log")
        """,
    ),
    "SS201 daemon thread": (
        "SS201",
        """
        import threading
        def start():
            threading.Thread(target=work, daemon=True).start()
        """,
    ),
    "SS201 module executor": (
        "SS201",
        """
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(4)
        """,
    ),
    "SS202 apscheduler": (
        "SS202",
        """
        from apscheduler.schedulers.background import BackgroundScheduler
        scheduler = BackgroundScheduler()
        """,
    ),
    "SS202 schedule": (
        "SS202",
        """
        import schedule
        schedule.every(10).minutes.do(job)
        """,
    ),
    "SS203 create_task discarded": (
        "SS203",
        """
        import asyncio
        async def handler(event):
            asyncio.create_task(notify(event))
            return {"ok": True}
        """,
    ),
    "SS203 background tasks": (
        "SS203",
        """
        async def signup(background_tasks, user):
            background_tasks.add_task(send_welcome, user)
        """,
    ),
    "SS204 sleep timedelta": (
        "SS204",
        """
        import time
        from datetime import timedelta
        def remind(order):
            time.sleep(timedelta(hours=1).total_seconds())
        """,
    ),
    "SS204 asyncio sleep constant": (
        "SS204",
        """
        import asyncio
        DELAY = 15 * 60
        async def later():
            await asyncio.sleep(DELAY)
        """,
    ),
    "SS205 polling": (
        "SS205",
        """
        import time
        def wait_until_paid(order_id):
            while get_status(order_id) != "paid":
                time.sleep(10)
        """,
    ),
    "SS301 psycopg at import": (
        "SS301",
        """
        import psycopg
        conn = psycopg.connect("postgresql://db/shop")
        """,
    ),
    "SS301 engine connect at import": (
        "SS301",
        """
        from sqlalchemy import create_engine
        engine = create_engine("postgresql://db/shop")
        connection = engine.connect()
        """,
    ),
    "SS302 boto3 client per call": (
        "SS302",
        """
        import boto3
        def handler(event, context):
            s3 = boto3.client("s3")
            s3.put_object(Bucket="b", Key="k", Body=b"")
        """,
    ),
    "SS302 requests session in route": (
        "SS302",
        """
        import requests
        @app.get("/rates")
        def rates():
            with requests.Session() as http:
                return http.get("https://fx/eur").json()
        """,
    ),
    "SS401 webhook": (
        "SS401",
        """
        @app.post("/webhooks/stripe")
        def stripe_webhook():
            event = request.get_json()
            db.mark_paid(event["data"]["order_id"])
            return "", 204
        """,
    ),
    "SS401 celery task": (
        "SS401",
        """
        from celery import shared_task
        @shared_task
        def ship_order(order_id):
            shipping.create_shipment(order_id)
        """,
    ),
    "SS401 pika callback": (
        "SS401",
        """
        def on_order(channel, method, properties, body):
            inventory.reserve(body)
        channel.basic_consume(queue="orders", on_message_callback=on_order)
        """,
    ),
    "SS402 stripe": (
        "SS402",
        """
        import stripe
        def pay(order):
            stripe.PaymentIntent.create(amount=order.cents, currency="eur")
        """,
    ),
    "SS402 payments client": (
        "SS402",
        """
        def pay(order):
            return payments.charge(order["card"], order["cents"])
        """,
    ),
    "SS402 http post to charges": (
        "SS402",
        """
        import requests
        def pay(cents):
            requests.post("https://api.psp.example/v1/charges", json={"a": cents})
        """,
    ),
    "SS403 ses": (
        "SS403",
        """
        import boto3
        ses = boto3.client("ses")
        def notify(address):
            ses.send_email(Source="a@b", Destination={"ToAddresses": [address]})
        """,
    ),
    "SS403 django send_mail": (
        "SS403",
        """
        from django.core.mail import send_mail
        def welcome(user):
            send_mail("Welcome", "Hello", "shop@example.com", [user.email])
        """,
    ),
    "SS501 three services": (
        "SS501",
        """
        def place_order(order):
            inventory.reserve(order.sku)
            payments.charge(order.card, order.cents, idempotency_key=order.id)
            shipping.create_shipment(order.id)
        """,
    ),
    "SS501 via self attributes": (
        "SS501",
        """
        class Checkout:
            def run(self, order):
                self.inventory.reserve(order.sku)
                self.billing.create_invoice(order.id)
        """,
    ),
}


@pytest.mark.parametrize("case", sorted(POSITIVE))
def test_rule_reports_its_hazard(case: str) -> None:
    rule_id, source = POSITIVE[case]
    assert rule_id in rule_ids(source)


NEGATIVE = {
    "SS101 constants read only": """
        PRICES = {"mug": 1200}
        def price(sku):
            return PRICES.get(sku, 0)
        """,
    "SS101 local shadows module name": """
        CARTS = {}
        def build(user):
            CARTS = {}
            CARTS[user] = []
            return CARTS
        """,
    "SS101 registry filled by a decorator at import": """
        HANDLERS = {}
        def handles(name):
            def register(fn):
                HANDLERS[name] = fn
                return fn
            return register
        @handles("order")
        def on_order(event): ...
        """,
    "SS101 set-up function called at import": """
        TABLE = {}
        def _load():
            TABLE.update({"a": 1})
        _load()
        """,
    "SS101 lazy client": """
        import psycopg
        _conn = None
        def get_conn():
            global _conn
            if _conn is None:
                _conn = psycopg.connect("postgresql://db")
            return _conn
        """,
    "SS101 memo of a pure computation": """
        import re
        _patterns = {}
        def pattern(text):
            if text not in _patterns:
                _patterns[text] = re.compile(text)
            return _patterns[text]
        """,
    "SS102 lru_cache on a pure function": """
        import functools
        @functools.lru_cache
        def currency_symbol(code):
            return {"EUR": "€", "USD": "$"}.get(code, code)
        """,
    "SS102 cached client getter": """
        import functools, boto3
        @functools.cache
        def s3():
            return boto3.client("s3")
        """,
    "SS103 cookie session": """
        from flask import session
        def login(user):
            session["user"] = user
        """,
    "SS104 tempfile": """
        import tempfile, os
        def render(data):
            with tempfile.TemporaryDirectory() as workdir:
                path = os.path.join(workdir, "out.pdf")
                with open(path, "wb") as f:
                    f.write(data)
        """,
    "SS104 /tmp and reads": """
        def scratch(data):
            with open("/tmp/scratch.bin", "wb") as f:
                f.write(data)
            with open("templates/mail.txt") as f:
                return f.read()
        """,
    "SS104 caller-given path": """
        def export(path, rows):
            with open(path, "w") as f:
                f.writelines(rows)
        """,
    "SS104 in-memory sqlite": """
        import sqlite3
        conn = sqlite3.connect(":memory:")
        """,
    "SS201 thread joined": """
        import threading
        def both():
            t = threading.Thread(target=work)
            t.start()
            t.join()
        """,
    "SS201 executor in with": """
        from concurrent.futures import ThreadPoolExecutor
        def fetch_all(urls):
            with ThreadPoolExecutor(8) as pool:
                return list(pool.map(fetch, urls))
        """,
    "SS203 awaited task": """
        import asyncio
        async def both():
            task = asyncio.create_task(one())
            await two()
            await task
        """,
    "SS204 short sleep and ss.sleep": """
        import time
        import stateshift as ss
        def nudge():
            time.sleep(0.5)
        def later():
            ss.sleep(3600)
        """,
    "SS205 retry backoff": """
        import time
        def call_with_retry():
            attempt = 0
            while True:
                try:
                    return call()
                except ConnectionError:
                    attempt += 1
                    time.sleep(2 ** attempt)
        """,
    "SS301 lazy pooled clients at import": """
        import boto3, requests, redis
        s3 = boto3.client("s3")
        http = requests.Session()
        cache = redis.Redis.from_url("redis://localhost")
        """,
    "SS301 django signal connect": """
        from django.db.models.signals import post_save
        post_save.connect(on_save)
        """,
    "SS302 client built in a plain helper": """
        import httpx
        def download(url):
            with httpx.Client() as client:
                return client.get(url).content
        """,
    "SS401 idempotent handler": """
        @app.idempotent(key=lambda event: event["id"])
        def on_payment(event):
            db.mark_paid(event["order_id"])
        """,
    "SS401 webhook that deduplicates": """
        @app.post("/webhooks/psp")
        def psp_webhook():
            event = request.get_json()
            if db.already_processed(event["id"]):
                return "", 200
            db.mark_paid(event["order_id"])
            return "", 200
        """,
    "SS401 read-only route": """
        @app.get("/orders/<order_id>")
        def show(order_id):
            return db.get_order(order_id)
        """,
    "SS402 with key": """
        import stateshift as ss
        def charge(order_id, cents):
            return payments.charge(order_id, cents,
                                   idempotency_key=ss.current().idempotency_key)
        """,
    "SS402 header key": """
        import requests
        def pay(cents, key):
            requests.post("https://psp/v1/charges", json={"a": cents},
                          headers={"Idempotency-Key": key})
        """,
    "SS402 orm row and battery": """
        def record(order):
            Payment.objects.create(order=order, cents=order.cents)
            battery.charge()
        """,
    "SS402 local step function": """
        def charge(order_id, cents):
            return gateway.charge(order_id, cents, idempotency_key=order_id)
        def checkout(order):
            charge(order.id, order.cents)
        """,
    "SS403 email inside idempotent handler": """
        @app.idempotent(key=lambda event: event["order_id"])
        def send_receipt(event):
            mailer.send(to=event["email"], subject="Receipt")
        """,
    "SS403 chat message": """
        def post(text):
            slack.send_message(channel="#ops", text=text)
        """,
    "SS501 saga": """
        import stateshift as ss
        def place_order(order):
            with ss.Saga() as saga:
                inventory.reserve(order.sku)
                saga.compensate(inventory.release, order.sku)
                shipping.create_shipment(order.id)
        """,
    "SS501 try with compensation": """
        def place_order(order):
            reservation = inventory.reserve(order.sku)
            try:
                shipping.create_shipment(order.id)
            except Exception:
                inventory.release(reservation)
                raise
        """,
    "SS501 one service, logging, local values": """
        import logging
        logger = logging.getLogger(__name__)
        def save(order):
            rows = []
            rows.append(order)
            db.insert_order(order)
            db.update_totals(order)
            logger.info("saved %s", order)
        """,
    "SS501 workflow of steps": """
        @app.workflow()
        def place_order(order):
            reserve(order)
            charge(order)
            ship(order)
        """,
}


@pytest.mark.parametrize("case", sorted(NEGATIVE))
def test_rule_leaves_safe_code_alone(case: str) -> None:
    rule_id = case.split()[0]
    found = rule_ids(NEGATIVE[case])
    assert rule_id not in found, found


def test_findings_carry_position_severity_and_advice() -> None:
    source = "CARTS = {}\ndef add(user, sku):\n    CARTS[user] = [sku]\n"
    (finding,) = analyze_source(source, "shop.py")
    assert (finding.path, finding.line, finding.column) == ("shop.py", 3, 5)
    assert finding.severity.value == "error"
    assert "CARTS" in finding.message and "add()" in finding.message
    assert "app.state" in finding.rule.fix and finding.rule.example


def test_columns_count_characters_not_bytes() -> None:
    source = 'CARTS = {}\ndef add(user):\n    x = "ééé"; CARTS[user] = x\n'
    (finding,) = analyze_source(source, "m.py")
    assert finding.column == len('    x = "ééé"; ') + 1


def test_syntax_error_is_a_finding() -> None:
    (finding,) = analyze_source("def broken(:\n    pass\n", "bad.py")
    assert finding.rule_id == "SS000"
    assert finding.line == 1
    assert "syntax error" in finding.message
