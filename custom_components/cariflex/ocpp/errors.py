"""OCPP-J RPC errors (CALLERROR codes) shared by OCPP 1.6 and 2.0.1.

The 1.6 errata spell the codes ``FormatViolation`` and ``OccurrenceConstraintViolation``
(the original 1.6 JSON text had ``FormationViolation``/``OccurenceConstraintViolation``);
2.0.1 uses the corrected spellings too, so one set serves both versions.
"""

from __future__ import annotations

from typing import Any


class OcppError(Exception):
    """Base of every error that travels as a CALLERROR."""

    code = "GenericError"

    def __init__(self, description: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(description or self.code)
        self.description = description or self.code
        self.details: dict[str, Any] = details or {}


class NotImplementedOcppError(OcppError):
    """The action is not known by the receiver."""

    code = "NotImplemented"


class NotSupportedError(OcppError):
    """The action is known but not supported by the receiver."""

    code = "NotSupported"


class InternalOcppError(OcppError):
    """The receiver failed while processing a valid request."""

    code = "InternalError"


class ProtocolError(OcppError):
    """The payload is incomplete."""

    code = "ProtocolError"


class SecurityError(OcppError):
    """The request was refused for security reasons."""

    code = "SecurityError"


class FormatViolationError(OcppError):
    """The payload is syntactically wrong."""

    code = "FormatViolation"


class PropertyConstraintViolationError(OcppError):
    """A field holds a value outside what the schema allows."""

    code = "PropertyConstraintViolation"


class OccurrenceConstraintViolationError(OcppError):
    """A required field is missing."""

    code = "OccurrenceConstraintViolation"


class TypeConstraintViolationError(OcppError):
    """A field has the wrong data type (or is longer than its CiString type)."""

    code = "TypeConstraintViolation"


class RpcFrameworkError(OcppError):
    """OCPP 2.0.1: the frame is not a valid RPC message."""

    code = "RpcFrameworkError"


class GenericOcppError(OcppError):
    """Any other error."""

    code = "GenericError"


class CallError(Exception):
    """The charger answered one of our CALLs with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str, details: Any) -> None:
        super().__init__(f"{action}: {code} {description}".strip())
        self.action = action
        self.code = code
        self.description = description
        self.details = details


class CallTimeoutError(Exception):
    """The charger did not answer one of our CALLs in time."""

    def __init__(self, action: str, timeout: float) -> None:
        super().__init__(f"{action}: no answer within {timeout:g} s")
        self.action = action
        self.timeout = timeout


class ChargerOfflineError(Exception):
    """A command was sent to a charger that is not connected."""

    def __init__(self, charger_id: str) -> None:
        super().__init__(f"charger {charger_id} is not connected")
        self.charger_id = charger_id


class InvalidResponseError(Exception):
    """The charger's CALLRESULT does not match the schema of the action."""

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"{action}: invalid response: {reason}")
        self.action = action
        self.reason = reason
