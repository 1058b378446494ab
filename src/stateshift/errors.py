"""The error tree of stateshift.

Every error a user can cause derives from :class:`StateshiftError`, carries
the ids needed to find the thing that went wrong, and says what to do::

    StateshiftError
    ├── ConfigError                    a setting or URL is invalid (also ValueError)
    ├── StoreError                     the database could not do what was asked
    │   ├── StoreUnavailable           lost connection, busy database (retryable)
    │   ├── StoreIntegrityError        a constraint was violated (not retryable)
    │   └── SchemaError                schema missing, newer than this code, or unsafe
    ├── CodecError                     a value cannot be stored or read back
    │   ├── UnsupportedType            no encoding for this type (a TypeError)
    │   ├── PayloadTooLarge            an encoded value exceeds the size limit
    │   ├── DeserializationError       a stored value is malformed or tampered with
    │   └── EncryptionError            a key is missing or a ciphertext is invalid
    ├── ConflictError                  a versioned write found a newer version
    ├── InvalidKey                     a key is empty, too long or malformed
    ├── WorkflowError                  about one workflow, carries ``workflow_id``
    │   ├── WorkflowNotFound           no workflow has this id
    │   ├── WorkflowConflict           the id is taken by another function or input
    │   ├── WorkflowFailed             the workflow ended in failure (from results)
    │   ├── WorkflowCancelled          the workflow was cancelled
    │   ├── NonDeterminismError        replay found a different step than history
    │   ├── LeaseLost                  another worker took the workflow over
    │   ├── StepError                  a replayed step error whose type is unknown here
    │   ├── StepTimeout                one attempt of a step ran past its timeout
    │   ├── WorkflowTimeout            the workflow ran past its overall timeout
    │   └── EventTimeout               an awaited event did not arrive in time
    ├── IdempotencyError               about one idempotency key
    │   ├── IdempotencyInProgress      the same key is being handled right now
    │   └── IdempotencyKeyMismatch     the same key arrived with another payload
    ├── QueueError                     a queue is unknown or a message is invalid
    ├── ResidencyViolation             data would be stored or processed out of place
    └── DataErased                     the data subject was forgotten

Errors that are safe to retry have ``retryable = True``.
"""

from __future__ import annotations

__all__ = [
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
    "NonDeterminismError",
    "PayloadTooLarge",
    "QueueError",
    "ResidencyViolation",
    "SchemaError",
    "StateshiftError",
    "StepError",
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
]


class StateshiftError(Exception):
    """Base of every error stateshift raises on purpose."""

    retryable: bool = False


class ConfigError(StateshiftError, ValueError):
    """A setting, URL or option is invalid.

    Attributes:
        setting: the name of the setting that is wrong.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"invalid setting {setting!r}: {message}")
        self.setting = setting


class StoreError(StateshiftError):
    """The store could not complete an operation."""


class StoreUnavailable(StoreError):
    """The database is unreachable or busy; the operation may be retried."""

    retryable = True


class StoreIntegrityError(StoreError):
    """A constraint of the schema was violated; retrying will not help."""


class SchemaError(StoreError):
    """The schema is missing, newer than this code, or cannot work here."""


class CodecError(StateshiftError):
    """A value cannot be encoded for storage or decoded from it."""


class UnsupportedType(CodecError, TypeError):
    """The codec has no encoding for a value's type.

    Attributes:
        type_name: the qualified name of the type.
        path: where in the value it was found, like ``$.items[2].price``.
    """

    def __init__(self, type_name: str, path: str) -> None:
        super().__init__(
            f"cannot encode a value of type {type_name} at {path}: use dict, list, "
            "str, int, float, bool, None, bytes, datetime, date, UUID, Decimal, "
            "Enum, a dataclass or a pydantic model"
        )
        self.type_name = type_name
        self.path = path


class PayloadTooLarge(CodecError):
    """An encoded value is larger than the configured limit; never retried.

    Attributes:
        what: which value, like ``result of step 'charge'``.
        size_bytes: its encoded size.
        limit_bytes: the limit in force.
    """

    def __init__(self, what: str, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(
            f"{what} is {size_bytes} bytes encoded, over the limit of {limit_bytes} "
            "bytes: store large data in a state namespace (it goes to the blob "
            "store) and pass its key, or raise the 'max_value_bytes' setting"
        )
        self.what = what
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class DeserializationError(CodecError):
    """A stored value is malformed, tampered with, or not of the expected type."""


class EncryptionError(CodecError):
    """An encryption key is missing, or a ciphertext fails authentication."""


class ConflictError(StateshiftError):
    """A versioned write expected a version that is no longer current.

    Attributes:
        namespace: the state namespace.
        key: the key written.
        expected_version: the version the writer expected.
        current_version: the version in the store (0 when the key is absent).
    """

    retryable = True

    def __init__(
        self,
        namespace: str,
        key: str,
        expected_version: int | None,
        current_version: int,
    ) -> None:
        super().__init__(
            f"version conflict on {namespace}/{key!r}: expected version "
            f"{expected_version}, current is {current_version}; read it again "
            "and retry, or use update() which retries for you"
        )
        self.namespace = namespace
        self.key = key
        self.expected_version = expected_version
        self.current_version = current_version


class InvalidKey(StateshiftError, ValueError):
    """A key or name is empty, too long, or contains characters not allowed."""


class WorkflowError(StateshiftError):
    """An error about one workflow.

    Attributes:
        workflow_id: the workflow concerned.
    """

    def __init__(self, workflow_id: str, message: str) -> None:
        super().__init__(message)
        self.workflow_id = workflow_id


class WorkflowNotFound(WorkflowError):
    """No workflow has the given id."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(
            workflow_id,
            f"no workflow with id {workflow_id!r}: check the id, or list them with "
            "'stateshift workflows list'",
        )


class WorkflowConflict(WorkflowError):
    """A workflow id is already used by another function or another input."""


class WorkflowFailed(WorkflowError):
    """The workflow failed; ``error_type`` and ``error_message`` tell why."""

    def __init__(self, workflow_id: str, error_type: str, error_message: str) -> None:
        super().__init__(
            workflow_id,
            f"workflow {workflow_id!r} failed with {error_type}: {error_message}",
        )
        self.error_type = error_type
        self.error_message = error_message


class WorkflowCancelled(WorkflowError):
    """The workflow was cancelled before it finished."""


class NonDeterminismError(WorkflowError):
    """Replay met a step call that differs from the recorded history.

    The workflow is left ``blocked``: fix the code (or guard the change with
    ``ss.patched``) and resume it.
    """


class LeaseLost(WorkflowError):
    """This worker's claim on a workflow was taken over; its writes are fenced out."""

    retryable = True


class StepError(WorkflowError):
    """A recorded step error whose type could not be rebuilt on replay.

    Replay raises the recorded exception type when it is a built-in or an
    exception class already imported in this process; otherwise this
    stands in for it, with the same message.

    Attributes:
        error_type: qualified name of the original exception type.
        error_message: its message.
    """

    def __init__(self, workflow_id: str, error_type: str, error_message: str) -> None:
        super().__init__(workflow_id, error_message)
        self.error_type = error_type
        self.error_message = error_message


class StepTimeout(WorkflowError):
    """One attempt of a step ran longer than its timeout."""

    retryable = True


class WorkflowTimeout(WorkflowError):
    """The workflow ran longer than its overall timeout."""


class EventTimeout(WorkflowError):
    """``wait_for_event`` reached its timeout before the event arrived."""


class IdempotencyError(StateshiftError):
    """An error about one idempotency key.

    Attributes:
        key: the idempotency key.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class IdempotencyInProgress(IdempotencyError):
    """A call with the same idempotency key is running now; retry later."""

    retryable = True


class IdempotencyKeyMismatch(IdempotencyError):
    """The idempotency key was seen before with a different payload."""


class QueueError(StateshiftError):
    """A queue is unknown, or a message cannot be enqueued."""


class ResidencyViolation(StateshiftError):
    """Data would be stored or processed in a region its policy forbids.

    Attributes:
        tag: the residency tag of the data, like ``EU``.
        region: the region that tried, like ``us``.
        operation: what was attempted (``write``, ``read``, ``start``, ``claim``).
        key: the key or id of the data concerned.
    """

    def __init__(self, tag: str, region: str, operation: str, key: str) -> None:
        super().__init__(
            f"residency violation: {operation} of {key!r} tagged {tag} is not "
            f"allowed in region {region!r}; route it to an allowed region or "
            "change the residency policy"
        )
        self.tag = tag
        self.region = region
        self.operation = operation
        self.key = key


class DataErased(StateshiftError):
    """The value belongs to a data subject who was forgotten.

    Attributes:
        subject: the data subject.
    """

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"this value belonged to data subject {subject!r}, who was forgotten; "
            "it can no longer be read"
        )
        self.subject = subject
