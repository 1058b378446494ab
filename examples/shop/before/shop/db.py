"""Order and product storage in SQLite, one connection for the process."""

import sqlite3
import uuid

from shop import settings

conn = sqlite3.connect(settings.DB_PATH, check_same_thread=False)
conn.row_factory = sqlite3.Row
conn.executescript(
    """
    CREATE TABLE IF NOT EXISTS products (
        sku TEXT PRIMARY KEY, name TEXT NOT NULL, cents INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS orders (
        id TEXT PRIMARY KEY, user_id TEXT NOT NULL, items TEXT NOT NULL,
        cents INTEGER NOT NULL, card_token TEXT NOT NULL, address TEXT NOT NULL,
        status TEXT NOT NULL, charge_id TEXT
    );
    INSERT OR IGNORE INTO products VALUES
        ('mug', 'Mug', 1200), ('tee', 'T-shirt', 2500);
    """
)


def find_product(sku):
    row = conn.execute("SELECT * FROM products WHERE sku = ?", (sku,)).fetchone()
    return dict(row) if row else None


def create_order(user_id, items, cents, card_token, address):
    order_id = uuid.uuid4().hex[:12]
    conn.execute(
        "INSERT INTO orders (id, user_id, items, cents, card_token, address, status)"
        " VALUES (?, ?, ?, ?, ?, ?, 'pending_payment')",
        (order_id, user_id, ",".join(items), cents, card_token, address),
    )
    conn.commit()
    return order_id


def get_order(order_id):
    row = conn.execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    return dict(row) if row else None


def set_status(order_id, status, charge_id=None):
    conn.execute(
        "UPDATE orders SET status = ?, charge_id = COALESCE(?, charge_id) WHERE id = ?",
        (status, charge_id, order_id),
    )
    conn.commit()
