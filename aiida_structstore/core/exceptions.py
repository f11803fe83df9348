"""The one error hierarchy of aiida-structstore.

Every error the package raises on purpose derives from :class:`StructStoreError`, so callers (the CLI, the
application's read side) can catch one class and still tell the cases apart. Messages name the problem and never
contain secret values (the Convex deploy key).
"""

from __future__ import annotations

__all__ = (
    'BackendError',
    'BackendUnavailableError',
    'ClaimLostError',
    'ConfigurationError',
    'ConflictError',
    'IntegrityError',
    'InvalidInputError',
    'LimitExceededError',
    'NotFoundError',
    'OwnershipError',
    'ParseError',
    'StructStoreError',
)


class StructStoreError(Exception):
    """Base class of every error raised by aiida-structstore."""


class ConfigurationError(StructStoreError):
    """The store is not configured correctly (missing or invalid environment variable, unknown backend)."""


class InvalidInputError(StructStoreError, ValueError):
    """An argument is invalid (bad id, non-UTF-8 text, value that cannot be represented). Nothing was written."""


class LimitExceededError(InvalidInputError):
    """A value is larger than the store accepts. Nothing was written."""


class ParseError(InvalidInputError):
    """A structure file could not be parsed, or the parser's result disagrees with what the file declares."""


class NotFoundError(StructStoreError, KeyError):
    """No committed record exists under the requested key."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the plain message.
        return str(self.args[0]) if self.args else 'not found'


class IntegrityError(StructStoreError):
    """Stored data failed verification (size, sha256, chunk count or order): the read is refused, not torn."""


class ConflictError(StructStoreError):
    """A concurrent writer changed the record while this operation was in progress; retrying is safe."""


class ClaimLostError(ConflictError):
    """An upload claim is no longer held: its lease expired and another importer claimed the upload, or the upload
    was completed or failed already. Nothing was changed; the holder must stop working on it."""


class OwnershipError(StructStoreError):
    """The key holds the record of another AiiDA node; it was not replaced (pass ``replace_owner`` to replace it)."""


class BackendError(StructStoreError):
    """The storage backend reported an error that is not one of the specific cases above."""

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class BackendUnavailableError(BackendError):
    """The storage backend could not be reached (after retries) or is not available in this installation."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code, retryable=True)
