"""ChargingProfiles module, Receiver interface: set, read and clear a session's profile.

A site takes one power limit per session (``set_charging_profile``/``clear_charging_profile``): the profile
period active now is sent, in W (A is converted with the connector's voltage and phases). The
ActiveChargingProfile we report is that limit (or the connector's maximum when none is set).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from ..context import Context
from ..ports import command_outcome
from ..repo.core import CoreRepo
from ..repo.inventory import InventoryRepo
from ..repo.peers import Peer
from ..repo.sessions import Session, SessionRepo
from ..timeutil import format_dt, parse_dt
from .commands import deliver
from .common import ENDPOINTS, ctx_of, peer_of
from .schema import SET_CHARGING_PROFILE, URL, Invalid, validate
from .transport import OcpiError, Status, invalid, json_body, reply

_PHASES = {"AC_1_PHASE": 1, "AC_2_PHASE": 2, "AC_2_PHASE_SPLIT": 2, "AC_3_PHASE": 3, "DC": 1}


def answer(result: str, timeout: int) -> dict[str, Any]:
    return {"result": result, "timeout": timeout}


async def _session(request: web.Request) -> Session | str:
    """The session the URL names, or the ChargingProfileResponseType refusing the request."""
    ctx = ctx_of(request)
    session = await SessionRepo(ctx.db).matching(request.match_info["session_id"])
    if session is None:
        return "UNKNOWN_SESSION"
    if session.peer_id != peer_of(request).id or session.status != "ACTIVE":
        return "REJECTED"
    if not ctx.hub.connected(session.site_id):
        return "REJECTED"
    return session


def _response_url(request: web.Request) -> str:
    try:
        value = request.query.get("response_url")
        if not value:
            raise Invalid("response_url", "missing")
        return str(URL.check(value, "response_url"))
    except Invalid as err:
        raise invalid(err) from None


async def _connector(ctx: Context, session: Session) -> tuple[int, int, str, int | None]:
    """(max voltage, max amperage, power type, max power) of the session's connector."""
    connectors = (await InventoryRepo(ctx.db).connectors([session.evse_uid]))[session.evse_uid]
    connector = next(c for c in connectors if c.connector_id == session.connector_id)
    return connector.max_voltage, connector.max_amperage, connector.power_type, connector.max_electric_power


def limit_now(profile: dict[str, Any], started: datetime, now: datetime) -> float | None:
    """The limit of the period in force at ``now`` (a relative profile starts with the session)."""
    periods = sorted(profile.get("charging_profile_period", []), key=lambda p: p["start_period"])
    if not periods:
        return None
    origin = parse_dt(profile["start_date_time"]) if "start_date_time" in profile else started
    elapsed = (now - origin).total_seconds()
    current = periods[0]
    for period in periods:
        if period["start_period"] <= elapsed:
            current = period
    return float(current["limit"])


async def _execute(ctx: Context, peer: Peer, session: Session, *, name: str, args: dict[str, Any], url: str) -> None:
    outcome = command_outcome(
        await ctx.hub.command(session.site_id, name, session.charger_id, args, ctx.config.ocpi.command_timeout)
    )
    result = {"accepted": "ACCEPTED", "rejected": "REJECTED"}.get(outcome.result, "REJECTED")
    if name == "clear_charging_profile" and outcome.result == "rejected":
        result = "UNKNOWN"
    if outcome.result == "accepted":
        await SessionRepo(ctx.db).set_limit(session.id, args.get("limit_w"), peer.id if "limit_w" in args else None)
    site = await CoreRepo(ctx.db).site(session.site_id)
    assert site is not None
    await deliver(
        ctx, peer, url, {"result": result}, owner=(site.country_code, site.party_id), module="chargingprofiles"
    )


async def put_profile(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    timeout = ctx.config.ocpi.command_timeout
    try:
        body = validate(SET_CHARGING_PROFILE, await json_body(request))
    except Invalid as err:
        raise invalid(err) from None
    found = await _session(request)
    if isinstance(found, str):
        return reply(ctx.clock(), answer(found, timeout))
    profile = body["charging_profile"]
    limit = limit_now(profile, found.start_at, ctx.clock())
    if limit is None:
        raise OcpiError(Status.INVALID_PARAMETERS, "charging_profile_period: no period")
    if profile["charging_rate_unit"] == "A":
        voltage, _, power_type, _ = await _connector(ctx, found)
        limit = limit * voltage * _PHASES[power_type]
    args = {"session_id": found.site_session_id, "limit_w": round(limit, 1)}
    ctx.spawn(
        _execute(ctx, peer_of(request), found, name="set_charging_profile", args=args, url=body["response_url"]),
        "profile-set",
    )
    return reply(ctx.clock(), answer("ACCEPTED", timeout))


async def delete_profile(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    timeout = ctx.config.ocpi.command_timeout
    url = _response_url(request)
    found = await _session(request)
    if isinstance(found, str):
        return reply(ctx.clock(), answer(found, timeout))
    args = {"session_id": found.site_session_id}
    ctx.spawn(
        _execute(ctx, peer_of(request), found, name="clear_charging_profile", args=args, url=url), "profile-clear"
    )
    return reply(ctx.clock(), answer("ACCEPTED", timeout))


async def _report(ctx: Context, peer: Peer, session: Session, duration: int, url: str) -> None:
    voltage, amperage, power_type, max_power = await _connector(ctx, session)
    limit = session.limit_w if session.limit_w is not None else max_power or voltage * amperage * _PHASES[power_type]
    profile = {
        "start_date_time": format_dt(ctx.clock()),
        "charging_profile": {
            "charging_rate_unit": "W",
            "duration": duration,
            "charging_profile_period": [{"start_period": 0, "limit": float(limit)}],
        },
    }
    site = await CoreRepo(ctx.db).site(session.site_id)
    assert site is not None
    body = {"result": "ACCEPTED", "profile": profile}
    await deliver(ctx, peer, url, body, owner=(site.country_code, site.party_id), module="chargingprofiles")


async def get_profile(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    timeout = ctx.config.ocpi.command_timeout
    url = _response_url(request)
    try:
        duration = int(request.query.get("duration", ""))
        if duration < 0:
            raise ValueError
    except ValueError:
        raise OcpiError(Status.INVALID_PARAMETERS, "duration: a number of seconds is required") from None
    found = await _session(request)
    if isinstance(found, str):
        return reply(ctx.clock(), answer(found, timeout))
    ctx.spawn(_report(ctx, peer_of(request), found, duration, url), "profile-get")
    return reply(ctx.clock(), answer("ACCEPTED", timeout))


def routes() -> list[web.RouteDef]:
    path = ENDPOINTS["chargingprofiles"][1] + "/{session_id}"
    return [
        web.get(path, get_profile, name="ocpi.chargingprofiles.get"),
        web.put(path, put_profile, name="ocpi.chargingprofiles.put"),
        web.delete(path, delete_profile, name="ocpi.chargingprofiles.delete"),
    ]
