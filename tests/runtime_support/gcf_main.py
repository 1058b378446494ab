"""The Cloud Functions source of the adapter tests (``--source gcf_main.py``)."""

from __future__ import annotations

from runtime_support.sample import TOKEN, app, service
from stateshift.gcp import cloudevent_function, http_function

api = http_function(app, token=TOKEN, service=service, timeout=5)
on_message = cloudevent_function(app, service=service, timeout=5)
