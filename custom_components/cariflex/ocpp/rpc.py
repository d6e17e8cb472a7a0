"""OCPP-J RPC framing: CALL / CALLRESULT / CALLERROR over one websocket.

One :class:`RpcEndpoint` per connected charger. Inbound CALLs are handled one after the
other (the order of StartTransaction and MeterValues matters) and answered with a
CALLRESULT or a CALLERROR with the code the schema failure calls for. Outbound CALLs
are serialised (one in flight, as OCPP-J requires), matched by unique id and bounded by
a timeout, so a charger that never answers only ever blocks its own command queue.

Payloads are validated against the JSON schemas shipped with the ``ocpp`` package, for
the version negotiated on this connection only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import decimal
from functools import lru_cache
import json
import logging
from pathlib import Path
from typing import Any, Protocol
import uuid

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError as SchemaValidationError
import ocpp

from .errors import (
    CallError,
    CallTimeoutError,
    ChargerOfflineError,
    FormatViolationError,
    InternalOcppError,
    InvalidResponseError,
    NotImplementedOcppError,
    NotSupportedError,
    OccurrenceConstraintViolationError,
    OcppError,
    PropertyConstraintViolationError,
    ProtocolError,
    RpcFrameworkError,
    TypeConstraintViolationError,
)

_LOGGER = logging.getLogger(__name__)

CALL = 2
CALLRESULT = 3
CALLERROR = 4

V16 = "1.6"
V201 = "2.0.1"

_SCHEMA_ROOT = Path(ocpp.__file__).parent
# 1.6 schemas that carry ``multipleOf: 0.1``: validate them on Decimals (as the ocpp
# library does) so that 21.4 is not rejected as 21.399999999999995.
_DECIMAL_SCHEMAS = {
    (V16, CALL, "SetChargingProfile"),
    (V16, CALL, "RemoteStartTransaction"),
    (V16, CALLRESULT, "GetCompositeSchedule"),
}


class Transport(Protocol):
    """What the endpoint needs from a websocket."""

    async def send_text(self, text: str) -> None:
        """Send one text frame."""


InboundHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


@lru_cache(maxsize=512)
def _validator(version: str, message_type: int, action: str) -> Draft4Validator | None:
    folder = "v16" if version == V16 else "v201"
    name = action
    if message_type == CALLRESULT:
        name += "Response"
    elif version == V201:
        name += "Request"
    path = _SCHEMA_ROOT / folder / "schemas" / f"{name}.json"
    if not path.is_file():
        return None
    parse_float: Callable[[str], Any] = (
        decimal.Decimal if (version, message_type, action) in _DECIMAL_SCHEMAS else float
    )
    schema = json.loads(path.read_text(encoding="utf-8-sig"), parse_float=parse_float)
    return Draft4Validator(schema)


def preload_schemas() -> int:
    """Read every schema of both versions (blocking I/O: call it in an executor). Returns the count."""
    count = 0
    for version, folder in ((V16, "v16"), (V201, "v201")):
        for path in (_SCHEMA_ROOT / folder / "schemas").glob("*.json"):
            name = path.stem
            if name.endswith("Response"):
                message_type, action = CALLRESULT, name.removesuffix("Response")
            else:
                message_type, action = CALL, name.removesuffix("Request") if version == V201 else name
            if _validator(version, message_type, action) is not None:
                count += 1
    return count


def known_action(version: str, action: str) -> bool:
    """Whether ``action`` is defined by this OCPP version."""
    return _validator(version, CALL, action) is not None


def validate(version: str, message_type: int, action: str, payload: Any) -> None:
    """Validate ``payload``; raise the :class:`OcppError` its failure maps to."""
    validator = _validator(version, message_type, action)
    if validator is None:
        raise NotImplementedOcppError(f"{action} is not an OCPP {version} action")
    if (version, message_type, action) in _DECIMAL_SCHEMAS:
        payload = json.loads(json.dumps(payload, default=_json_default), parse_float=decimal.Decimal)
    try:
        validator.validate(payload)
    except SchemaValidationError as err:
        raise _schema_error(err) from None


def _schema_error(err: SchemaValidationError) -> OcppError:
    where = "/".join(str(p) for p in err.absolute_path) or "payload"
    message = f"{where}: {err.message}"
    match err.validator:
        case "required":
            return OccurrenceConstraintViolationError(message)
        case "type" | "maxLength" | "format":
            return TypeConstraintViolationError(message)
        case "additionalProperties":
            return FormatViolationError(message)
        case "enum" | "minimum" | "maximum" | "multipleOf" | "minItems" | "maxItems" | "minLength":
            return PropertyConstraintViolationError(message)
        case _:
            return FormatViolationError(message)


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(frame: list[Any]) -> str:
    """Serialise an OCPP-J frame compactly."""
    return json.dumps(frame, separators=(",", ":"), default=_json_default)


class RpcEndpoint:
    """The OCPP-J RPC state of one websocket connection."""

    def __init__(
        self,
        transport: Transport,
        version: str,
        handler: InboundHandler,
        *,
        call_timeout: float = 30.0,
        name: str = "",
        after_reply: Callable[[], None] | None = None,
    ) -> None:
        self._transport = transport
        self.version = version
        self._handler = handler
        self.call_timeout = call_timeout
        self._name = name
        self._after_reply = after_reply
        self._call_lock = asyncio.Lock()
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self.closed = False

    # ------------------------------------------------------------------ inbound
    async def handle_frame(self, raw: str | bytes) -> None:
        """Process one received frame; never raises for bad input."""
        try:
            frame = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            await self._send_error("-1", self._framing_error("frame is not valid JSON"))
            return
        if not isinstance(frame, list) or len(frame) < 3 or not isinstance(frame[1], str):
            unique_id = frame[1] if isinstance(frame, list) and len(frame) > 1 else "-1"
            await self._send_error(
                unique_id if isinstance(unique_id, str) else "-1",
                self._framing_error("frame is not [MessageTypeId, UniqueId, ...]"),
            )
            return
        message_type, unique_id = frame[0], frame[1]
        if message_type == CALL:
            await self._handle_call(frame)
        elif message_type == CALLRESULT:
            self._resolve(unique_id, frame[2], None)
        elif message_type == CALLERROR:
            details = frame[4] if len(frame) > 4 else {}
            description = frame[3] if len(frame) > 3 else ""
            self._resolve(unique_id, None, (str(frame[2]), str(description), details))
        else:
            await self._send_error(unique_id, self._framing_error(f"unknown MessageTypeId {message_type!r}"))

    def _framing_error(self, message: str) -> OcppError:
        if self.version == V201:
            return RpcFrameworkError(message)
        return ProtocolError(message)

    async def _handle_call(self, frame: list[Any]) -> None:
        unique_id: str = frame[1]
        if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
            await self._send_error(unique_id, FormatViolationError("CALL is [2, UniqueId, Action, {payload}]"))
            return
        action: str = frame[2]
        payload: dict[str, Any] = frame[3]
        try:
            if not known_action(self.version, action):
                raise NotImplementedOcppError(f"{action} is not an OCPP {self.version} action")
            validate(self.version, CALL, action, payload)
            response = await self._handler(action, payload)
        except OcppError as err:
            _LOGGER.debug("%s: %s refused with %s: %s", self._name, action, err.code, err.description)
            await self._send_error(unique_id, err)
            return
        except Exception:
            _LOGGER.exception("%s: error while handling %s", self._name, action)
            await self._send_error(unique_id, InternalOcppError(f"{action} could not be processed"))
            return
        try:
            validate(self.version, CALLRESULT, action, response)
        except OcppError as err:  # our own bug: never send an invalid answer
            _LOGGER.error("%s: our %s response is invalid: %s", self._name, action, err.description)
            await self._send_error(unique_id, InternalOcppError(f"{action} response invalid"))
            return
        await self._transport.send_text(dumps([CALLRESULT, unique_id, response]))
        if self._after_reply is not None:
            # Follow-up requests start only once the charger has its answer (a charger
            # may refuse requests before its BootNotification is accepted).
            self._after_reply()

    async def _send_error(self, unique_id: str, err: OcppError) -> None:
        await self._transport.send_text(dumps([CALLERROR, unique_id, err.code, err.description[:255], err.details]))

    def _resolve(self, unique_id: str, payload: Any, error: tuple[str, str, Any] | None) -> None:
        pending = self._pending.get(unique_id)
        if pending is None:
            _LOGGER.debug("%s: answer to unknown or expired call %s ignored", self._name, unique_id)
            return
        action, future = pending
        if future.done():
            return
        if error is not None:
            future.set_exception(CallError(action, *error))
        else:
            future.set_result(payload)

    # ----------------------------------------------------------------- outbound
    async def call(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a CALL and return the charger's CALLRESULT payload.

        Raises :class:`CallError`, :class:`CallTimeoutError` or :class:`InvalidResponseError`.
        """
        validate(self.version, CALL, action, payload)
        wait = self.call_timeout if timeout is None else timeout
        if self.closed:
            raise ChargerOfflineError(self._name)
        async with self._call_lock:
            if self.closed:  # closed while waiting for the previous call
                raise ChargerOfflineError(self._name)
            unique_id = uuid.uuid4().hex
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._pending[unique_id] = (action, future)
            try:
                await self._transport.send_text(dumps([CALL, unique_id, action, payload]))
                async with asyncio.timeout(wait):
                    result = await future
            except TimeoutError:
                raise CallTimeoutError(action, wait) from None
            finally:
                self._pending.pop(unique_id, None)
        if not isinstance(result, dict):
            raise InvalidResponseError(action, "payload is not an object")
        try:
            validate(self.version, CALLRESULT, action, result)
        except OcppError as err:
            raise InvalidResponseError(action, err.description) from None
        return result

    def close(self) -> None:
        """Fail every pending call: the connection is gone."""
        self.closed = True
        for _action, future in self._pending.values():
            if not future.done():
                future.set_exception(ChargerOfflineError(self._name))
        self._pending.clear()


__all__ = [
    "CALL",
    "CALLERROR",
    "CALLRESULT",
    "V16",
    "V201",
    "NotSupportedError",
    "RpcEndpoint",
    "Transport",
    "dumps",
    "known_action",
    "validate",
]
