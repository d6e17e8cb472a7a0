"""Sessions module, Sender interface: the requesting eMSP's sessions; charging preferences."""

from __future__ import annotations

from aiohttp import web

from ..repo.sessions import SessionRepo
from . import views
from .common import ENDPOINTS, ctx_of, peer_of
from .schema import CHARGING_PREFERENCES, Invalid, validate
from .transport import OcpiError, Status, invalid, json_body, paginated, parse_page


async def list_sessions(request: web.Request) -> web.Response:
    """Only the sessions of the requesting eMSP's tokens (a server need not return every object)."""
    ctx = ctx_of(request)
    limit = ctx.config.ocpi.page_limit
    page = parse_page(request, limit)
    found, total = await SessionRepo(ctx.db).for_peer(
        peer_of(request).id, page.date_from, page.date_to, page.offset, page.limit
    )
    now = ctx.clock()
    items = [await views.session(ctx.db, session) for session in found]
    return paginated(now, request, items, public_url=ctx.config.public_url, total=total, page=page, max_limit=limit)


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
