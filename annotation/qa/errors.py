"""The one application error type.

Every refusal in Granary (bad input, a missing thing, a state that forbids
an action) is a `Refused`, or a subclass where a caller must tell cases
apart. Each class carries the HTTP status it stands for; `config.errors`
turns any `Refused` that leaves a view into a response, in one place.
Pure: importable by `training/ml` and plain scripts.
"""

from __future__ import annotations


class Refused(ValueError):
    """A request that cannot be carried out; the message names what was wrong and where."""

    status = 422

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)

    @property
    def message(self) -> str:
        return str(self)


class BadRequest(Refused):
    """The request itself is malformed (a missing or unparseable parameter)."""

    status = 400


class Forbidden(Refused):
    """The user may not do this."""

    status = 403


class NotFound(Refused):
    """The thing asked for does not exist."""

    status = 404


class TooLarge(Refused):
    """The request carries more than a setting allows (an upload over MAX_UPLOAD_MB)."""

    status = 413


class Conflict(Refused):
    """The thing is in a state that forbids the action (already running, stale, submitted elsewhere)."""

    status = 409
