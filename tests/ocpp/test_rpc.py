"""OCPP-J framing: every CALLERROR path, outbound calls, Decimal validation."""

from __future__ import annotations

import asyncio
import decimal
import json
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError as SchemaValidationError
import pytest

from custom_components.cariflex.ocpp import rpc
from custom_components.cariflex.ocpp.errors import (
    CallError,
    CallTimeoutError,
    ChargerOfflineError,
    FormatViolationError,
    InvalidResponseError,
    NotImplementedOcppError,
    NotSupportedError,
    OccurrenceConstraintViolationError,
    OcppError,
    PropertyConstraintViolationError,
    TypeConstraintViolationError,
)
from custom_components.cariflex.ocpp.rpc import CALL, CALLERROR, CALLRESULT, V16, V201, RpcEndpoint
from tests.ocpp import FakeTransport

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}


class Handler:
    """Inbound handler that records calls and answers from a table."""

    def __init__(self, answers: dict[str, Any] | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, Any] = answers or {
            "Heartbeat": {"currentTime": "2024-01-01T00:00:00Z"},
            "BootNotification": {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300},
            "StatusNotification": {},
            "MeterValues": {},
        }
        self.raise_error: BaseException | None = None

    async def __call__(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((action, payload))
        if self.raise_error is not None:
            raise self.raise_error
        answer: dict[str, Any] = self.answers[action]
        return answer


def endpoint(
    version: str = V16, handler: Handler | None = None, **kwargs: Any
) -> tuple[RpcEndpoint, FakeTransport, Handler]:
    transport = FakeTransport()
    handler = handler or Handler()
    return RpcEndpoint(transport, version, handler, name="CP1", **kwargs), transport, handler


async def inbound(raw: str | bytes, version: str = V16, handler: Handler | None = None) -> list[Any]:
    """Feed one frame to a fresh endpoint; return the single frame it answers with."""
    ep, transport, _ = endpoint(version, handler)
    await ep.handle_frame(raw)
    assert len(transport.sent) == 1
    return transport.last


def call(action: str, payload: Any, unique_id: str = "u1") -> str:
    return json.dumps([CALL, unique_id, action, payload])


# --------------------------------------------------------------------------- framing errors
@pytest.mark.parametrize(("version", "code"), [(V16, "ProtocolError"), (V201, "RpcFrameworkError")])
@pytest.mark.parametrize("raw", ["not json", "[2, 'single quotes', 'Heartbeat', {}]", b"\xff\xfe\x00"])
async def test_invalid_json_is_a_framing_error_with_unknown_id(version: str, code: str, raw: str | bytes) -> None:
    frame = await inbound(raw, version)
    assert frame[:3] == [CALLERROR, "-1", code]
    assert "not valid JSON" in frame[3]
    assert frame[4] == {}


@pytest.mark.parametrize(
    ("raw", "unique_id"),
    [
        ('{"a": 1}', "-1"),  # not a list
        ('"text"', "-1"),
        ("[2]", "-1"),  # too short, no id
        ('[2, "abc"]', "abc"),  # too short, id known
        ('[2, 5, "Heartbeat", {}]', "-1"),  # id not a string
        ("[3, null]", "-1"),
    ],
)
@pytest.mark.parametrize(("version", "code"), [(V16, "ProtocolError"), (V201, "RpcFrameworkError")])
async def test_frame_not_a_message_list(raw: str, unique_id: str, version: str, code: str) -> None:
    frame = await inbound(raw, version)
    assert frame[:3] == [CALLERROR, unique_id, code]
    assert "MessageTypeId" in frame[3]


@pytest.mark.parametrize(("version", "code"), [(V16, "ProtocolError"), (V201, "RpcFrameworkError")])
async def test_unknown_message_type(version: str, code: str) -> None:
    frame = await inbound('[7, "id7", "Heartbeat", {}]', version)
    assert frame[:3] == [CALLERROR, "id7", code]
    assert "unknown MessageTypeId 7" in frame[3]


async def test_deeply_nested_frame_is_a_framing_error() -> None:
    ep, transport, _ = endpoint()
    await ep.handle_frame("[" * 100_000)
    assert transport.last[:3] == [CALLERROR, "-1", "ProtocolError"]


@pytest.mark.parametrize(
    "raw",
    [
        '[2, "u1", "Heartbeat"]',  # no payload
        '[2, "u1", "Heartbeat", []]',  # payload not an object
        '[2, "u1", 5, {}]',  # action not a string
        '[2, "u1", "Heartbeat", {}, "extra"]',  # too long
    ],
)
async def test_call_with_wrong_shape_is_format_violation(raw: str) -> None:
    handler = Handler()
    frame = await inbound(raw, handler=handler)
    assert frame[:3] == [CALLERROR, "u1", "FormatViolation"]
    assert handler.calls == []


async def test_unknown_action_is_not_implemented() -> None:
    handler = Handler()
    frame = await inbound(call("MakeCoffee", {}), handler=handler)
    assert frame[:3] == [CALLERROR, "u1", "NotImplemented"]
    assert handler.calls == []


async def test_action_of_other_version_is_not_implemented() -> None:
    # TransactionEvent exists in 2.0.1 only; StartTransaction in 1.6 only.
    assert (await inbound(call("TransactionEvent", {})))[2] == "NotImplemented"
    assert (await inbound(call("StartTransaction", {}), V201))[2] == "NotImplemented"


async def test_known_but_unhandled_action_is_not_supported() -> None:
    handler = Handler()
    handler.raise_error = NotSupportedError("RemoteStartTransaction is not handled by a central system")
    frame = await inbound(call("RemoteStartTransaction", {"idTag": "TAG"}), handler=handler)
    assert frame == [
        CALLERROR,
        "u1",
        "NotSupported",
        "RemoteStartTransaction is not handled by a central system",
        {},
    ]


@pytest.mark.parametrize(
    ("action", "payload", "code"),
    [
        ("BootNotification", {"chargePointVendor": "Vendor"}, "OccurrenceConstraintViolation"),
        ("BootNotification", {"chargePointVendor": 5, "chargePointModel": "M"}, "TypeConstraintViolation"),
        ("BootNotification", {"chargePointVendor": "V" * 21, "chargePointModel": "M"}, "TypeConstraintViolation"),
        (
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"},
            "PropertyConstraintViolation",
        ),
        ("MeterValues", {"connectorId": 1, "meterValue": []}, "PropertyConstraintViolation"),  # minItems
        ("Heartbeat", {"extra": 1}, "FormatViolation"),  # every 1.6 schema forbids extra properties
        ("BootNotification", {**BOOT, "colour": "red"}, "FormatViolation"),
    ],
)
async def test_schema_failures_map_to_codes(action: str, payload: dict[str, Any], code: str) -> None:
    handler = Handler()
    frame = await inbound(call(action, payload), handler=handler)
    assert frame[:3] == [CALLERROR, "u1", code]
    assert handler.calls == [], "an invalid payload never reaches the handler"


async def test_cistring_at_its_maximum_length_is_accepted() -> None:
    frame = await inbound(call("BootNotification", {"chargePointVendor": "V" * 20, "chargePointModel": "M"}))
    assert frame[0] == CALLRESULT


async def test_error_description_names_the_field() -> None:
    frame = await inbound(call("BootNotification", {"chargePointVendor": 5, "chargePointModel": "M"}))
    assert frame[3].startswith("chargePointVendor: ")
    frame = await inbound(call("BootNotification", {"chargePointModel": "M"}))
    assert frame[3].startswith("payload: ")


@pytest.mark.parametrize(
    ("validator", "expected"),
    [
        ("required", OccurrenceConstraintViolationError),
        ("type", TypeConstraintViolationError),
        ("maxLength", TypeConstraintViolationError),
        ("format", TypeConstraintViolationError),
        ("additionalProperties", FormatViolationError),
        ("enum", PropertyConstraintViolationError),
        ("minimum", PropertyConstraintViolationError),
        ("maximum", PropertyConstraintViolationError),
        ("multipleOf", PropertyConstraintViolationError),
        ("minItems", PropertyConstraintViolationError),
        ("maxItems", PropertyConstraintViolationError),
        ("minLength", PropertyConstraintViolationError),
        ("anyOf", FormatViolationError),
    ],
)
def test_schema_error_mapping(validator: str, expected: type[OcppError]) -> None:
    err = SchemaValidationError("is wrong", validator=validator, path=["a", 0, "b"])  # type: ignore[arg-type]
    mapped = rpc._schema_error(err)
    assert type(mapped) is expected
    assert mapped.description == "a/0/b: is wrong"


async def test_handler_exception_is_internal_error() -> None:
    handler = Handler()
    handler.raise_error = RuntimeError("boom")
    frame = await inbound(call("Heartbeat", {}), handler=handler)
    assert frame == [CALLERROR, "u1", "InternalError", "Heartbeat could not be processed", {}]


async def test_handler_ocpp_error_keeps_details_and_truncates_description() -> None:
    handler = Handler()
    handler.raise_error = PropertyConstraintViolationError("x" * 300, {"field": "connectorId"})
    frame = await inbound(call("Heartbeat", {}), handler=handler)
    assert frame[:3] == [CALLERROR, "u1", "PropertyConstraintViolation"]
    assert frame[3] == "x" * 255
    assert frame[4] == {"field": "connectorId"}


async def test_error_without_description_uses_code() -> None:
    handler = Handler()
    handler.raise_error = NotSupportedError()
    frame = await inbound(call("Heartbeat", {}), handler=handler)
    assert frame[2:4] == ["NotSupported", "NotSupported"]


async def test_invalid_answer_of_our_handler_is_never_sent() -> None:
    handler = Handler({"Heartbeat": {"currentTime": 12}})
    frame = await inbound(call("Heartbeat", {}), handler=handler)
    assert frame == [CALLERROR, "u1", "InternalError", "Heartbeat response invalid", {}]


async def test_valid_call_answered_then_after_reply() -> None:
    order: list[str] = []
    transport = FakeTransport()
    handler = Handler()

    def after() -> None:
        order.append(f"after reply, {len(transport.sent)} sent")

    ep = RpcEndpoint(transport, V16, handler, after_reply=after)
    await ep.handle_frame(call("BootNotification", BOOT, "b1"))
    assert transport.last == [CALLRESULT, "b1", handler.answers["BootNotification"]]
    assert handler.calls == [("BootNotification", BOOT)]
    assert order == ["after reply, 1 sent"]
    # a refused call does not trigger follow-ups
    await ep.handle_frame(call("Heartbeat", {"x": 1}, "h1"))
    assert order == ["after reply, 1 sent"]


async def test_bytes_frame_and_v201_request_schema() -> None:
    handler = Handler()
    frame = await inbound(call("Heartbeat", {}).encode(), V201, handler)
    assert frame[0] == CALLRESULT
    assert handler.calls == [("Heartbeat", {})]


# ------------------------------------------------------------------------------ outbound
async def answer_next(transport: FakeTransport, ep: RpcEndpoint, count: int, reply: Any) -> list[Any]:
    """Wait for the ``count``-th frame (a CALL) and answer it with ``reply(unique_id)``."""
    frames = await transport.wait_for_frames(count)
    sent = frames[count - 1]
    await ep.handle_frame(json.dumps(reply(sent[1])))
    return sent


async def test_call_returns_result() -> None:
    ep, transport, _ = endpoint()
    task = asyncio.create_task(ep.call("Reset", {"type": "Soft"}))
    sent = await answer_next(transport, ep, 1, lambda uid: [CALLRESULT, uid, {"status": "Accepted"}])
    assert sent[0] == CALL
    assert sent[2:] == ["Reset", {"type": "Soft"}]
    assert isinstance(sent[1], str)
    assert sent[1]
    assert await task == {"status": "Accepted"}
    assert ep._pending == {}


async def test_call_error_raises_call_error() -> None:
    ep, transport, _ = endpoint()
    task = asyncio.create_task(ep.call("Reset", {"type": "Hard"}))
    await answer_next(
        transport, ep, 1, lambda uid: [CALLERROR, uid, "NotSupported", "no resets here", {"why": "policy"}]
    )
    with pytest.raises(CallError) as info:
        await task
    assert info.value.action == "Reset"
    assert info.value.code == "NotSupported"
    assert info.value.description == "no resets here"
    assert info.value.details == {"why": "policy"}
    assert "Reset: NotSupported no resets here" in str(info.value)


async def test_short_call_error_frame() -> None:
    ep, transport, _ = endpoint()
    task = asyncio.create_task(ep.call("Reset", {"type": "Hard"}))
    await answer_next(transport, ep, 1, lambda uid: [CALLERROR, uid, "GenericError"])
    with pytest.raises(CallError) as info:
        await task
    assert (info.value.code, info.value.description, info.value.details) == ("GenericError", "", {})


async def test_call_timeout_and_late_answer_ignored() -> None:
    ep, transport, _ = endpoint(call_timeout=30)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(CallTimeoutError) as info:
        await ep.call("Reset", {"type": "Soft"}, timeout=0.05)
    assert loop.time() - started < 1
    assert info.value.action == "Reset"
    assert info.value.timeout == 0.05
    assert ep._pending == {}
    late_id = transport.last[1]
    await ep.handle_frame(json.dumps([CALLRESULT, late_id, {"status": "Accepted"}]))
    await ep.handle_frame(json.dumps([CALLERROR, late_id, "InternalError", "", {}]))
    assert len(transport.sent) == 1, "a late answer is not answered"
    # the lock was released: the next call goes through
    task = asyncio.create_task(ep.call("Reset", {"type": "Hard"}))
    await answer_next(transport, ep, 2, lambda uid: [CALLRESULT, uid, {"status": "Rejected"}])
    assert await task == {"status": "Rejected"}


async def test_default_timeout_is_the_endpoint_s() -> None:
    ep, _, _ = endpoint(call_timeout=0.05)
    with pytest.raises(CallTimeoutError) as info:
        await ep.call("ClearCache", {})
    assert info.value.timeout == 0.05
    assert "no answer within 0.05 s" in str(info.value)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ({"status": "Maybe"}, "status"),  # enum
        ({}, "status"),  # required
        ([], "payload is not an object"),
        ("Accepted", "payload is not an object"),
    ],
)
async def test_invalid_response(reply: Any, reason: str) -> None:
    ep, transport, _ = endpoint()
    task = asyncio.create_task(ep.call("Reset", {"type": "Soft"}))
    await answer_next(transport, ep, 1, lambda uid: [CALLRESULT, uid, reply])
    with pytest.raises(InvalidResponseError) as info:
        await task
    assert info.value.action == "Reset"
    assert reason in info.value.reason


async def test_invalid_outbound_payload_is_never_sent() -> None:
    ep, transport, _ = endpoint()
    with pytest.raises(OccurrenceConstraintViolationError):
        await ep.call("Reset", {})
    with pytest.raises(PropertyConstraintViolationError):
        await ep.call("Reset", {"type": "Medium"})
    with pytest.raises(NotImplementedOcppError):
        await ep.call("MakeCoffee", {})
    assert transport.sent == []


async def test_one_call_in_flight_at_a_time() -> None:
    ep, transport, _ = endpoint()
    first = asyncio.create_task(ep.call("Reset", {"type": "Soft"}))
    second = asyncio.create_task(ep.call("ClearCache", {}))
    await transport.wait_for_frames(1)
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(transport.sent) == 1, "the second CALL waits for the first answer"
    assert transport.last[2] == "Reset"
    await ep.handle_frame(json.dumps([CALLRESULT, transport.last[1], {"status": "Accepted"}]))
    sent = await answer_next(transport, ep, 2, lambda uid: [CALLRESULT, uid, {"status": "Accepted"}])
    assert sent[2] == "ClearCache"
    assert await first == {"status": "Accepted"}
    assert await second == {"status": "Accepted"}


async def test_answer_to_wrong_id_does_not_resolve() -> None:
    ep, transport, _ = endpoint()
    task = asyncio.create_task(ep.call("ClearCache", {}))
    await transport.wait_for_frames(1)
    await ep.handle_frame(json.dumps([CALLRESULT, "someone-else", {"status": "Rejected"}]))
    await asyncio.sleep(0)
    assert not task.done()
    await ep.handle_frame(json.dumps([CALLRESULT, transport.last[1], {"status": "Accepted"}]))
    assert await task == {"status": "Accepted"}


async def test_second_answer_to_same_call_ignored() -> None:
    ep, transport, _ = endpoint()
    task = asyncio.create_task(ep.call("ClearCache", {}))
    await transport.wait_for_frames(1)
    uid = transport.last[1]
    await ep.handle_frame(json.dumps([CALLRESULT, uid, {"status": "Accepted"}]))
    await ep.handle_frame(json.dumps([CALLERROR, uid, "InternalError", "late", {}]))
    assert await task == {"status": "Accepted"}


async def test_close_fails_pending_calls() -> None:
    ep, transport, _ = endpoint()
    task = asyncio.create_task(ep.call("ClearCache", {}))
    await transport.wait_for_frames(1)
    assert not ep.closed
    ep.close()
    assert ep.closed
    with pytest.raises(ChargerOfflineError) as info:
        await task
    assert info.value.charger_id == "CP1"
    assert ep._pending == {}


async def test_call_after_close_fails_fast() -> None:
    ep, _, _ = endpoint(call_timeout=0.2)
    ep.close()
    with pytest.raises(ChargerOfflineError):
        await ep.call("ClearCache", {})


# ------------------------------------------------------------------------------ decimals
def set_profile(limit: Any) -> dict[str, Any]:
    return {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1001,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            },
        },
    }


def test_float_validation_would_reject_21_4() -> None:
    """Why Decimals are needed: 21.4 / 0.1 is not an integer in binary floating point."""
    assert not Draft4Validator({"type": "number", "multipleOf": 0.1}).is_valid(21.4)


@pytest.mark.parametrize("limit", [21.4, 6.1, 16, 0.3, decimal.Decimal("21.4"), 11040.0])
def test_set_charging_profile_limits_validate_as_decimals(limit: Any) -> None:
    rpc.validate(V16, CALL, "SetChargingProfile", set_profile(limit))


@pytest.mark.parametrize("limit", [21.45, 0.05])
def test_set_charging_profile_limit_not_a_tenth(limit: float) -> None:
    with pytest.raises(PropertyConstraintViolationError):
        rpc.validate(V16, CALL, "SetChargingProfile", set_profile(limit))


def test_remote_start_profile_and_composite_schedule_use_decimals() -> None:
    profile = set_profile(21.4)["csChargingProfiles"] | {"chargingProfilePurpose": "TxProfile"}
    rpc.validate(V16, CALL, "RemoteStartTransaction", {"idTag": "TAG", "chargingProfile": profile})
    rpc.validate(
        V16,
        CALLRESULT,
        "GetCompositeSchedule",
        {
            "status": "Accepted",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7.7}]},
        },
    )


async def test_outbound_set_charging_profile_21_4() -> None:
    ep, transport, _ = endpoint()
    task = asyncio.create_task(ep.call("SetChargingProfile", set_profile(21.4)))
    await answer_next(transport, ep, 1, lambda uid: [CALLRESULT, uid, {"status": "Accepted"}])
    assert await task == {"status": "Accepted"}
    assert '"limit":21.4' in transport.sent[0]


async def test_inbound_composite_schedule_with_tenths() -> None:
    ep, transport, _ = endpoint()
    task = asyncio.create_task(ep.call("GetCompositeSchedule", {"connectorId": 1, "duration": 60}))
    reply = {
        "status": "Accepted",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}]},
    }
    await answer_next(transport, ep, 1, lambda uid: [CALLRESULT, uid, reply])
    assert (await task)["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 21.4


def test_dumps() -> None:
    assert rpc.dumps([CALL, "a", "X", {"v": decimal.Decimal("21.4")}]) == '[2,"a","X",{"v":21.4}]'
    with pytest.raises(TypeError, match="set is not JSON serialisable"):
        rpc.dumps([{1, 2}])


def test_known_action_and_preload() -> None:
    assert rpc.known_action(V16, "StartTransaction")
    assert not rpc.known_action(V16, "TransactionEvent")
    assert rpc.known_action(V201, "TransactionEvent")
    assert not rpc.known_action(V201, "MakeCoffee")
    # both versions: 1.6 has 80 schema files, 2.0.1 more than 120
    assert rpc.preload_schemas() > 200
    with pytest.raises(NotImplementedOcppError):
        rpc.validate(V16, CALLRESULT, "MakeCoffee", {})
