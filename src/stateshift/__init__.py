"""stateshift: move stateful Python services onto serverless compute safely.

The public surface is this module's ``__all__``; everything else is internal.
Heavy dependencies (database drivers, web server, cloud SDKs) are imported
only when the feature that needs them is used.
"""

from __future__ import annotations

from stateshift.app import App
from stateshift.errors import (
    CodecError,
    ConfigError,
    ConflictError,
    DataErased,
    DeserializationError,
    EncryptionError,
    EventTimeout,
    IdempotencyError,
    IdempotencyInProgress,
    IdempotencyKeyMismatch,
    InvalidKey,
    LeaseLost,
    NonDeterminismError,
    PayloadTooLarge,
    QueueError,
    ResidencyViolation,
    SchemaError,
    StateshiftError,
    StepTimeout,
    StoreError,
    StoreIntegrityError,
    StoreUnavailable,
    UnsupportedType,
    WorkflowCancelled,
    WorkflowConflict,
    WorkflowError,
    WorkflowFailed,
    WorkflowNotFound,
    WorkflowTimeout,
)
from stateshift.events import Message, Queue, RedisIdempotencyStore

__version__ = "0.1.0"

__all__ = [
    "App",
    "CodecError",
    "ConfigError",
    "ConflictError",
    "DataErased",
    "DeserializationError",
    "EncryptionError",
    "EventTimeout",
    "IdempotencyError",
    "IdempotencyInProgress",
    "IdempotencyKeyMismatch",
    "InvalidKey",
    "LeaseLost",
    "Message",
    "NonDeterminismError",
    "PayloadTooLarge",
    "Queue",
    "QueueError",
    "RedisIdempotencyStore",
    "ResidencyViolation",
    "SchemaError",
    "StateshiftError",
    "StepTimeout",
    "StoreError",
    "StoreIntegrityError",
    "StoreUnavailable",
    "UnsupportedType",
    "WorkflowCancelled",
    "WorkflowConflict",
    "WorkflowError",
    "WorkflowFailed",
    "WorkflowNotFound",
    "WorkflowTimeout",
    "__version__",
]
