"""Credentials module, both directions.

Incoming: a peer registers with the token A we gave it (POST), rotates (PUT), unregisters (DELETE).
Outgoing: we register with a peer that gave us its token A and versions URL, rotate, unregister.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
import logging
from typing import Any

from aiohttp import web

from ..context import OCPI_VERSION, Context
from ..repo.peers import PENDING, REGISTERED, TOKEN_A, TOKEN_C, Peer, PeerRepo
from ..secrets_util import hash_token, new_token
from .client import PeerCallError
from .common import ENDPOINTS, ctx_of, peer_of
from .schema import CREDENTIALS, VERSION, VERSION_DETAILS, Invalid, validate
from .transport import OcpiError, Status, invalid, json_body, reply, request_info

_LOGGER = logging.getLogger(__name__)


class RegistrationError(Exception):
    """We could not register with, rotate with or unregister from a peer."""


@dataclass(frozen=True, kw_only=True)
class PeerEndpoints:
    """What a peer's versions endpoint told us."""

    versions_url: str
    version: str
    endpoints: list[dict[str, Any]]


async def our_credentials(ctx: Context, token: str) -> dict[str, Any]:
    """Our Credentials object carrying ``token`` (the one the peer uses to call us)."""
    parties = await ctx.parties()
    if not parties:
        raise OcpiError(Status.SERVER_ERROR, "no CPO party is configured")
    roles = []
    for party in parties:
        details: dict[str, Any] = {"name": party.name}
        if party.website:
            details["website"] = party.website
        roles.append(
            {"role": "CPO", "business_details": details, "party_id": party.party_id, "country_code": party.country_code}
        )
    return {"token": token, "url": ctx.versions_url, "roles": roles}


async def fetch_endpoints(ctx: Context, peer: Peer, versions_url: str, token: str) -> PeerEndpoints:
    """GET the peer's versions then the 2.2.1 details; OcpiError 3001/3002/3003 when that fails."""
    try:
        listing = await ctx.client.call(peer, "GET", versions_url, module="versions", token=token)
        if not listing.ok or not isinstance(listing.data, list):
            raise PeerCallError(f"versions: HTTP {listing.http_status}, status {listing.status_code}")
        versions = [validate(VERSION, item) for item in listing.data]
    except (PeerCallError, Invalid) as err:
        raise OcpiError(Status.CLIENT_API_UNUSABLE, f"cannot read your versions: {err}") from None
    chosen = next((item for item in versions if item["version"] == OCPI_VERSION), None)
    if chosen is None:
        raise OcpiError(Status.UNSUPPORTED_VERSION, f"no mutual version: we speak {OCPI_VERSION} only")
    try:
        answer = await ctx.client.call(peer, "GET", chosen["url"], module="versions", token=token)
        if not answer.ok:
            raise PeerCallError(f"version details: HTTP {answer.http_status}, status {answer.status_code}")
        details = validate(VERSION_DETAILS, answer.data)
    except (PeerCallError, Invalid) as err:
        raise OcpiError(Status.CLIENT_API_UNUSABLE, f"cannot read your {OCPI_VERSION} endpoints: {err}") from None
    endpoints = details["endpoints"]
    if not any(endpoint["identifier"] == "credentials" for endpoint in endpoints):
        raise OcpiError(Status.NO_MATCHING_ENDPOINTS, "your version details have no credentials endpoint")
    return PeerEndpoints(versions_url=versions_url, version=OCPI_VERSION, endpoints=endpoints)


# --- incoming ---------------------------------------------------------------------------------------


async def get_credentials(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    token = request_info().token
    assert token is not None
    return reply(ctx.clock(), await our_credentials(ctx, token))


async def _exchange(request: web.Request, peer: Peer) -> web.Response:
    """POST and PUT: read the peer's credentials, fetch its endpoints, issue a new token, answer ours."""
    ctx = ctx_of(request)
    try:
        theirs = validate(CREDENTIALS, await json_body(request))
    except Invalid as err:
        raise invalid(err) from None
    await our_credentials(ctx, "")  # fail before calling the peer when we have nothing to offer
    found = await fetch_endpoints(ctx, peer, theirs["url"], theirs["token"])
    token = new_token()
    now = ctx.clock()
    async with ctx.db.transaction() as tx:
        repo = PeerRepo(tx)
        await _store_exchange(repo, peer.id, found, theirs, now)
        await repo.drop_tokens(peer.id)
        await repo.add_token(peer.id, hash_token(token), TOKEN_C, now)
    _LOGGER.info(
        "Peer %s registered (%s)", peer.id, request.method, extra={"peer": peer.id, "roles": len(theirs["roles"])}
    )
    return reply(ctx.clock(), await our_credentials(ctx, token))


async def post_credentials(request: web.Request) -> web.Response:
    peer = peer_of(request)
    if request_info().token_kind != TOKEN_A:
        raise OcpiError(Status.CLIENT_ERROR, "already registered: use PUT", http_status=405)
    return await _exchange(request, peer)


async def put_credentials(request: web.Request) -> web.Response:
    peer = peer_of(request)
    if request_info().token_kind != TOKEN_C or peer.status != REGISTERED:
        raise OcpiError(Status.CLIENT_ERROR, "not registered: use POST", http_status=405)
    return await _exchange(request, peer)


async def delete_credentials(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    peer = peer_of(request)
    if request_info().token_kind != TOKEN_C or peer.status != REGISTERED:
        raise OcpiError(Status.CLIENT_ERROR, "not registered", http_status=405)
    async with ctx.db.transaction() as tx:
        await PeerRepo(tx).unregister(peer.id, ctx.clock())
    _LOGGER.info("Peer %s unregistered itself", peer.id, extra={"peer": peer.id})
    return reply(ctx.clock())


def routes() -> list[web.RouteDef]:
    path = ENDPOINTS["credentials"][1]
    return [
        web.get(path, get_credentials, name="ocpi.credentials.get"),
        web.post(path, post_credentials, name="ocpi.credentials.post"),
        web.put(path, put_credentials, name="ocpi.credentials.put"),
        web.delete(path, delete_credentials, name="ocpi.credentials.delete"),
    ]


# --- outgoing ---------------------------------------------------------------------------------------


async def issue_token_a(ctx: Context, name: str) -> tuple[int, str]:
    """A new peer that may register with the returned token A."""
    token = new_token()
    now = ctx.clock()
    async with ctx.db.transaction() as tx:
        repo = PeerRepo(tx)
        peer_id = await repo.create(name, now)
        await repo.add_token(peer_id, hash_token(token), TOKEN_A, now)
    return peer_id, token


def _credentials_url(peer: Peer) -> str:
    url = peer.endpoint("credentials", "SENDER")
    if url is None:  # pragma: no cover - fetch_endpoints refuses peers without one
        raise RegistrationError(f"peer {peer.id} has no credentials endpoint")
    return url


async def _their_credentials(
    ctx: Context, peer: Peer, method: str, url: str, *, body: Any, token: str | None
) -> dict[str, Any]:
    try:
        answer = await ctx.client.call(peer, method, url, module="credentials", body=body, token=token)
    except PeerCallError as err:
        raise RegistrationError(str(err)) from err
    if not answer.ok:
        raise RegistrationError(
            f"{method} credentials: HTTP {answer.http_status}, status {answer.status_code} {answer.message or ''}".strip()
        )
    try:
        return validate(CREDENTIALS, answer.data)
    except Invalid as err:
        raise RegistrationError(f"{method} credentials: {err}") from None


async def _endpoints_or_error(ctx: Context, peer: Peer, url: str, token: str) -> PeerEndpoints:
    try:
        return await fetch_endpoints(ctx, peer, url, token)
    except OcpiError as err:
        raise RegistrationError(err.message) from None


async def register_with(ctx: Context, name: str, versions_url: str, token_a: str) -> Peer:
    """Register with a peer that gave us ``token_a`` and ``versions_url`` (we are the Sender)."""
    if not await ctx.parties():
        raise RegistrationError("no CPO party is configured")
    now = ctx.clock()
    async with ctx.db.transaction() as tx:
        peer_id = await PeerRepo(tx).create(name, now)
    peer = await PeerRepo(ctx.db).get(peer_id)
    assert peer is not None
    try:
        found = await _endpoints_or_error(ctx, peer, versions_url, token_a)
        peer = _with_endpoints(peer, found)
        token_b = new_token()
        await PeerRepo(ctx.db).add_token(peer_id, hash_token(token_b), TOKEN_C, ctx.clock())
        theirs = await _their_credentials(
            ctx, peer, "POST", _credentials_url(peer), body=await our_credentials(ctx, token_b), token=token_a
        )
        if theirs["url"] != versions_url:
            found = await _endpoints_or_error(ctx, peer, theirs["url"], theirs["token"])
    except BaseException:
        async with ctx.db.transaction() as tx:
            await PeerRepo(tx).delete(peer_id)
        raise
    async with ctx.db.transaction() as tx:
        await _store_exchange(PeerRepo(tx), peer_id, found, theirs, ctx.clock())
    registered = await PeerRepo(ctx.db).get(peer_id)
    assert registered is not None
    _LOGGER.info("Registered with peer %s", peer_id, extra={"peer": peer_id})
    return registered


async def _store_exchange(
    repo: PeerRepo, peer_id: int, found: PeerEndpoints, theirs: Mapping[str, Any], now: datetime
) -> None:
    """Store a finished credentials exchange: their endpoints, their roles, the token we use with them."""
    await repo.register(
        peer_id,
        versions_url=found.versions_url,
        version=found.version,
        endpoints=found.endpoints,
        roles=theirs["roles"],
        token_out=theirs["token"],
        now=now,
    )


def _with_endpoints(peer: Peer, found: PeerEndpoints) -> Peer:
    """The peer as seen with freshly fetched endpoints (still pending until the exchange ends)."""
    return replace(peer, versions_url=found.versions_url, version=found.version, endpoints=found.endpoints)


async def _registered_peer(ctx: Context, peer_id: int) -> Peer:
    peer = await PeerRepo(ctx.db).get(peer_id)
    if peer is None or peer.status != REGISTERED:
        raise RegistrationError(f"peer {peer_id} is not registered")
    return peer


async def rotate_with(ctx: Context, peer_id: int) -> Peer:
    """New tokens both ways (PUT credentials): ours for them, theirs for us."""
    peer = await _registered_peer(ctx, peer_id)
    token_b = new_token()
    await PeerRepo(ctx.db).add_token(peer_id, hash_token(token_b), TOKEN_C, ctx.clock())
    try:
        theirs = await _their_credentials(
            ctx, peer, "PUT", _credentials_url(peer), body=await our_credentials(ctx, token_b), token=None
        )
        found = await _endpoints_or_error(ctx, peer, theirs["url"], theirs["token"])
    except BaseException:
        await PeerRepo(ctx.db).drop_tokens_matching(peer_id, hash_token(token_b))
        raise
    async with ctx.db.transaction() as tx:
        repo = PeerRepo(tx)
        await _store_exchange(repo, peer_id, found, theirs, ctx.clock())
        await repo.drop_tokens(peer_id, keep=hash_token(token_b))
    rotated = await PeerRepo(ctx.db).get(peer_id)
    assert rotated is not None
    _LOGGER.info("Rotated credentials with peer %s", peer_id, extra={"peer": peer_id})
    return rotated


async def unregister_from(ctx: Context, peer_id: int, *, force: bool = False) -> None:
    """DELETE our credentials at the peer, then forget it (``force``: forget it even if that fails)."""
    peer = await PeerRepo(ctx.db).get(peer_id)
    if peer is None or (peer.status == PENDING and not force):
        raise RegistrationError(f"peer {peer_id} is not registered")
    if peer.status == REGISTERED:
        try:
            answer = await ctx.client.call(peer, "DELETE", _credentials_url(peer), module="credentials")
            if not answer.ok:
                raise RegistrationError(f"DELETE credentials: HTTP {answer.http_status}, status {answer.status_code}")
        except (PeerCallError, RegistrationError) as err:
            if not force:
                raise RegistrationError(str(err)) from err
            _LOGGER.warning("Peer %s did not confirm: %s", peer_id, err, extra={"peer": peer_id})
    async with ctx.db.transaction() as tx:
        await PeerRepo(tx).unregister(peer_id, ctx.clock())
