"""Settings, read from the environment once at start-up."""

import os

DB_PATH = os.environ.get("SHOP_DB", "shop.db")
ORDER_LOG = os.environ.get("SHOP_ORDER_LOG", "orders.log")
PSP_URL = os.environ.get("SHOP_PSP_URL", "https://psp.example.com")
PSP_API_KEY = os.environ.get("SHOP_PSP_API_KEY", "test-key")
INVENTORY_URL = os.environ.get("SHOP_INVENTORY_URL", "https://inventory.internal")
SHIPPING_URL = os.environ.get("SHOP_SHIPPING_URL", "https://shipping.internal")
SMTP_HOST = os.environ.get("SHOP_SMTP_HOST", "localhost")
SHOP_EMAIL = "orders@shop.example.com"

# Orders above this amount need a manager's approval before they ship.
APPROVAL_LIMIT_CENTS = 100_000
