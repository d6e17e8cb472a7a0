"""The errors of the signal sources (EDF-SEI ZNI signal, RTE Tempo and EcoWatt, HP/HC schedule).

A short tree, so that callers catch what they can act on::

    SignalError
    ├── SignalConfigError        the configuration is invalid (also a ValueError)
    │   └── ScheduleError        an HP/HC schedule string does not parse
    ├── SignalConnectionError    no answer: cannot connect, connection lost, timeout
    ├── SignalQuotaExceededError our own daily quota guard refused to send the request
    └── SignalResponseError      the server answered, but with an error status or a body we cannot use
        ├── SignalAuthError      credentials refused (HTTP 401/403, OAuth2 token refused)
        └── SignalRateLimitError too many requests (HTTP 429)

Messages never contain an API key, a client secret or an access token.
"""

from __future__ import annotations

from datetime import datetime


class SignalError(Exception):
    """Base of every error raised by :mod:`custom_components.cariflex.signals`."""


class SignalConfigError(SignalError, ValueError):
    """A configuration value is invalid; ``field`` names it (``""`` when not one field)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        self.field = field
        super().__init__(message)


class ScheduleError(SignalConfigError):
    """An HP/HC schedule does not follow the grammar; the message quotes the faulty rule."""

    def __init__(self, message: str, *, rule: str = "") -> None:
        self.rule = rule
        super().__init__(message, field="schedule")


class SignalConnectionError(SignalError):
    """The server could not be reached (refused, unreachable, closed, or no answer in time)."""


class SignalResponseError(SignalError):
    """The server answered with an error status, or with a body that does not follow the contract.

    ``status`` is the HTTP status, ``code`` the server's error code, ``body`` its parsed JSON
    error body (None when there was none).
    """

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, body: object = None
    ) -> None:
        self.status = status
        self.code = code
        self.body = body
        super().__init__(message)


class SignalAuthError(SignalResponseError):
    """The credentials were refused (API key, OAuth2 client id/secret, or access token)."""


class SignalRateLimitError(SignalResponseError):
    """The server refused the request: too many requests (HTTP 429).

    ``retry_after`` is the wait in seconds the server asked for, when it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        code: str | None = None,
        body: object = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, code=code, body=body)


class SignalQuotaExceededError(SignalError):
    """Our daily quota guard refused to send a request; ``resets_at`` is when it opens again."""

    def __init__(self, message: str, *, resets_at: datetime) -> None:
        self.resets_at = resets_at
        super().__init__(message)
