"""Thin JSON-over-HTTP clients for the services the shop talks to."""

import json
import urllib.request

from shop import settings


class ServiceClient:
    def __init__(self, base_url, api_key=None):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key

    def _post(self, path, body):
        request = urllib.request.Request(
            self.base_url + path,
            data=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.api_key}",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


class PaymentsClient(ServiceClient):
    def charge(self, card_token, cents, currency="EUR"):
        answer = self._post(
            "/v1/charges", {"card": card_token, "amount": cents, "currency": currency}
        )
        return answer["charge_id"]

    def refund(self, charge_id):
        return self._post("/v1/refunds", {"charge": charge_id})


class InventoryClient(ServiceClient):
    def reserve(self, sku, quantity):
        return self._post("/reservations", {"sku": sku, "quantity": quantity})

    def release(self, reservation_id):
        return self._post(f"/reservations/{reservation_id}/release", {})


class ShippingClient(ServiceClient):
    def create_shipment(self, order_id, address):
        return self._post("/shipments", {"order": order_id, "address": address})


payments = PaymentsClient(settings.PSP_URL, settings.PSP_API_KEY)
inventory = InventoryClient(settings.INVENTORY_URL)
shipping = ShippingClient(settings.SHIPPING_URL)
