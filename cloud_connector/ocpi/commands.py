"""Commands module, Receiver interface: START/STOP_SESSION, RESERVE_NOW, CANCEL_RESERVATION, UNLOCK_CONNECTOR.

The answer (CommandResponse) only says whether we could send the command to the site; the charger's
answer comes later, POSTed as a CommandResult to the eMSP's ``response_url`` (or TIMEOUT).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
import logging
from typing import Any

from aiohttp import web

from ..context import Context
from ..ports import command_outcome
from ..repo.core import CoreRepo, Site
from ..repo.inventory import Evse, InventoryRepo
from ..repo.peers import Peer
from ..repo.sessions import SessionRepo
from ..timeutil import db_dt, parse_dt
from .client import PeerCallError
from .common import ENDPOINTS, ctx_of, peer_of
from .schema import (
    CANCEL_RESERVATION,
    RESERVE_NOW,
    START_SESSION,
    STOP_SESSION,
    UNLOCK_CONNECTOR,
    Invalid,
    Obj,
    validate,
)
from .transport import OcpiError, Status, invalid, json_body, reply

_LOGGER = logging.getLogger(__name__)

SCHEMAS: dict[str, Obj] = {
    "START_SESSION": START_SESSION,
    "STOP_SESSION": STOP_SESSION,
    "RESERVE_NOW": RESERVE_NOW,
    "CANCEL_RESERVATION": CANCEL_RESERVATION,
    "UNLOCK_CONNECTOR": UNLOCK_CONNECTOR,
}

# The site's answer -> CommandResultType.
RESULTS = {
    "accepted": "ACCEPTED",
    "rejected": "REJECTED",
    "failed": "FAILED",
    "unknown_charger": "FAILED",
    "timeout": "TIMEOUT",
}


@dataclass(frozen=True, kw_only=True)
class Plan:
    """A command we can send to a site."""

    site: Site
    name: str
    charger_id: str
    args: dict[str, Any]
    evse: Evse | None = None


class Refused(Exception):
    """The command is answered at once (CommandResponse other than ACCEPTED)."""

    def __init__(self, result: str, message: str) -> None:
        super().__init__(message)
        self.result = result
        self.message = message


def response(result: str, timeout: int, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"result": result, "timeout": timeout}
    if message:
        body["message"] = [{"language": "en", "text": message}]
    return body


async def locate(
    ctx: Context, location_id: str, evse_uid: str | None = None, *, available: bool = False
) -> tuple[Site, Evse]:
    """The site and EVSE a command names (2003 when unknown); without ``evse_uid`` the first available EVSE."""
    inv = InventoryRepo(ctx.db)
    site_id = await inv.site_id_matching(location_id)
    site = await CoreRepo(ctx.db).site(site_id) if site_id else None
    if site is None:
        raise OcpiError(Status.UNKNOWN_LOCATION, "unknown location")
    if evse_uid is not None:
        evse = await inv.evse_matching(site.id, evse_uid)
        if evse is None or evse.removed:
            raise OcpiError(Status.UNKNOWN_LOCATION, "unknown EVSE")
        return site, evse
    candidates = [e for e in await inv.evses(site.id) if not e.removed and (e.status == "AVAILABLE" or not available)]
    if not candidates:
        raise Refused("REJECTED", "no EVSE available")
    return site, candidates[0]


async def _connector(ctx: Context, evse: Evse, wanted: str | None) -> int:
    connectors = (await InventoryRepo(ctx.db).connectors([evse.uid]))[evse.uid]
    if wanted is None:
        if len(connectors) > 1:
            raise OcpiError(Status.INVALID_PARAMETERS, "connector_id is required for this EVSE")
        return int(connectors[0].connector_id)
    for connector in connectors:
        if connector.connector_id.lower() == wanted.lower():
            return int(connector.connector_id)
    raise OcpiError(Status.UNKNOWN_LOCATION, "unknown connector")


async def _expect_token(sessions: SessionRepo, site_id: str, peer: Peer, body: dict[str, Any], now: datetime) -> None:
    """Remember the eMSP's token of a START_SESSION or RESERVE_NOW: the session it starts is theirs."""
    token = body["token"]
    await sessions.add_hint(
        site_id,
        token["uid"],
        peer_id=peer.id,
        token=token,
        reference=body.get("authorization_reference"),
        now=now,
        command=True,
    )


async def plan(ctx: Context, peer: Peer, command: str, body: dict[str, Any]) -> Plan:
    """What to ask the site for this command; OcpiError or Refused when it cannot be sent."""
    now = ctx.clock()
    sessions = SessionRepo(ctx.db)
    if command == "START_SESSION":
        site, evse = await locate(ctx, body["location_id"], body.get("evse_uid"), available=True)
        connector = await _connector(ctx, evse, body.get("connector_id"))
        await _expect_token(sessions, site.id, peer, body, now)
        args = {"evse_id": evse.evse_id, "connector_id": connector, "id_tag": body["token"]["uid"]}
        return Plan(site=site, name="start_session", charger_id=evse.charger_id, args=args, evse=evse)
    if command == "STOP_SESSION":
        session = await sessions.matching(body["session_id"])
        if session is None:
            raise Refused("UNKNOWN_SESSION", "unknown session")
        if session.peer_id != peer.id:
            raise Refused("REJECTED", "not a session of yours")
        if session.status != "ACTIVE":
            raise Refused("REJECTED", "the session is over")
        where = await CoreRepo(ctx.db).site(session.site_id)
        assert where is not None
        return Plan(
            site=where, name="stop_session", charger_id=session.charger_id, args={"session_id": session.site_session_id}
        )
    if command == "RESERVE_NOW":
        site, evse = await locate(ctx, body["location_id"], body.get("evse_uid"), available=True)
        reservation = await ctx.db.fetchone(
            "INSERT INTO reservations (peer_id, reservation_id, location_id, evse_uid, created_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (peer_id, reservation_id, location_id) DO UPDATE SET evse_uid = excluded.evse_uid RETURNING id",
            (peer.id, body["reservation_id"], site.id, evse.uid, db_dt(now)),
        )
        assert reservation is not None
        await _expect_token(sessions, site.id, peer, body, now)
        args = {
            "reservation_id": reservation["id"],
            "evse_id": evse.evse_id,
            "id_tag": body["token"]["uid"],
            "expiry": body["expiry_date"],
        }
        return Plan(site=site, name="reserve_now", charger_id=evse.charger_id, args=args, evse=evse)
    if command == "CANCEL_RESERVATION":
        row = await ctx.db.fetchone(
            "SELECT r.id, e.site_id, e.charger_id FROM reservations r JOIN evses e ON e.uid = r.evse_uid "
            "WHERE r.peer_id = ? AND lower(r.reservation_id) = lower(?) ORDER BY r.id DESC LIMIT 1",
            (peer.id, body["reservation_id"]),
        )
        if row is None:
            raise Refused("REJECTED", "unknown reservation")
        where = await CoreRepo(ctx.db).site(row["site_id"])
        assert where is not None
        return Plan(
            site=where, name="cancel_reservation", charger_id=row["charger_id"], args={"reservation_id": row["id"]}
        )
    assert command == "UNLOCK_CONNECTOR"
    site, evse = await locate(ctx, body["location_id"], body["evse_uid"])
    connector = await _connector(ctx, evse, body["connector_id"])
    return Plan(
        site=site,
        name="unlock_connector",
        charger_id=evse.charger_id,
        args={"evse_id": evse.evse_id, "connector_id": connector},
    )


def result_type(plan_: Plan, outcome: str) -> str:
    """The CommandResultType for the site's answer (what a refusal most likely means, per command)."""
    result = RESULTS.get(outcome, "FAILED")
    if result == "REJECTED" and plan_.name == "cancel_reservation":
        return "UNKNOWN_RESERVATION"
    if result == "REJECTED" and plan_.evse is not None and plan_.name == "start_session":
        if plan_.evse.status == "CHARGING":
            return "EVSE_OCCUPIED"
        if plan_.evse.status in {"OUTOFORDER", "INOPERATIVE"}:
            return "EVSE_INOPERATIVE"
    return result


async def deliver(
    ctx: Context, peer: Peer, url: str, body: dict[str, Any], *, owner: tuple[str, str], module: str
) -> None:
    """POST an asynchronous result to the eMSP (not retried: OCPI does not queue)."""
    to_party = (peer.parties("EMSP") or peer.parties())[0]
    try:
        answer = await ctx.client.call(peer, "POST", url, module=module, body=body, routing=(owner, to_party))
        if not answer.ok:
            raise PeerCallError(f"HTTP {answer.http_status}, status {answer.status_code}")
    except PeerCallError as err:
        _LOGGER.warning("Result for peer %s not delivered: %s", peer.id, err, extra={"peer": peer.id, "url": url})


async def _execute(ctx: Context, peer: Peer, plan_: Plan, response_url: str) -> None:
    timeout = ctx.config.ocpi.command_timeout
    outcome = command_outcome(await ctx.hub.command(plan_.site.id, plan_.name, plan_.charger_id, plan_.args, timeout))
    result: dict[str, Any] = {"result": result_type(plan_, outcome.result)}
    if outcome.detail:
        result["message"] = [{"language": "en", "text": outcome.detail[:512]}]
    await deliver(
        ctx, peer, response_url, result, owner=(plan_.site.country_code, plan_.site.party_id), module="commands"
    )


async def post_command(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    peer = peer_of(request)
    timeout = ctx.config.ocpi.command_timeout
    command = request.match_info["command"]
    raw = await json_body(request)
    spec = SCHEMAS.get(command.upper())
    if spec is None:
        return reply(ctx.clock(), response("NOT_SUPPORTED", timeout, f"unknown command {command}"))
    try:
        body = validate(spec, raw)
        if "expiry_date" in body and parse_dt(body["expiry_date"]) <= ctx.clock():
            raise Invalid("expiry_date", "in the past")
    except Invalid as err:
        raise invalid(err) from None
    try:
        planned = await plan(ctx, peer, command.upper(), body)
        if not ctx.hub.connected(planned.site.id):
            raise Refused("REJECTED", "the site is offline")
    except Refused as refused:
        return reply(ctx.clock(), response(refused.result, timeout, refused.message))
    ctx.spawn(_execute(ctx, peer, planned, body["response_url"]), f"command-{command}")
    _LOGGER.info("Command %s for %s sent to site %s", command, peer.id, planned.site.id, extra={"peer": peer.id})
    return reply(ctx.clock(), response("ACCEPTED", timeout))


def routes() -> list[web.RouteDef]:
    return [web.post(ENDPOINTS["commands"][1] + "/{command}", post_command, name="ocpi.commands.post")]
