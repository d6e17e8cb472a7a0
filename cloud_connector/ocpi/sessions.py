"""Sessions module, Sender interface: the requesting eMSP's sessions; charging preferences."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..context import Context
from ..repo.sessions import SessionRepo
from . import views
from .common import ENDPOINTS, ctx_of, peer_of, sender_list
from .schema import CHARGING_PREFERENCES, Invalid, validate
from .transport import OcpiError, Page, Status, invalid, json_body


async def list_sessions(request: web.Request) -> web.Response:
    """Only the sessions of the requesting eMSP's tokens (a server need not return every object)."""

    async def fetch(ctx: Context, page: Page) -> tuple[list[dict[str, Any]], int]:
        found, total = await SessionRepo(ctx.db).for_peer(
            peer_of(request).id, page.date_from, page.date_to, page.offset, page.limit
        )
        return [await views.session(ctx.db, session) for session in found], total

    return await sender_list(request, fetch)


async def put_charging_preferences(request: web.Request) -> web.Response:
    """No EVSE of ours is CHARGING_PREFERENCES_CAPABLE: 404 with 2001, as mod_sessions says."""
    ctx = ctx_of(request)
    try:
        validate(CHARGING_PREFERENCES, await json_body(request))
    except Invalid as err:
        raise invalid(err) from None
    session = await SessionRepo(ctx.db).matching(request.match_info["session_id"])
    if session is None or session.peer_id != peer_of(request).id:
        raise OcpiError(Status.INVALID_PARAMETERS, "unknown session", http_status=404)
    raise OcpiError(Status.INVALID_PARAMETERS, "the EVSE is not CHARGING_PREFERENCES_CAPABLE", http_status=404)


def routes() -> list[web.RouteDef]:
    path = ENDPOINTS["sessions"][1]
    return [
        web.get(path, list_sessions, name="ocpi.sessions.list"),
        web.get(path + "/", list_sessions, name="ocpi.sessions.list-slash"),
        web.put(
            path + "/{session_id}/charging_preferences", put_charging_preferences, name="ocpi.sessions.preferences"
        ),
    ]
