"""The Lambda function of the adapter tests (``lambda_app.lambda_handler``)."""

from __future__ import annotations

from runtime_support.sample import TOKEN, app, service
from stateshift.aws import handler

lambda_handler = handler(app, token=TOKEN, service=service)
