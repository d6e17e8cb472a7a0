"""Who may charge: the eMSPs' whitelist rules, real-time authorization, and the list sites keep offline.

``Authorizer.authorize`` answers a site's question about a badge (for the uplink); ``offline_tokens`` is
what a site may accept on its own while it cannot reach us.

Rules (mod_tokens, WhitelistType), for a token an eMSP pushed:

- ALWAYS: decided here from ``valid``, the eMSP is never asked.
- ALLOWED: decided here too (the CPO may choose; the local answer is the fast one).
- ALLOWED_OFFLINE: the eMSP is asked; when it cannot be reached, the token is allowed.
- NEVER: the eMSP is asked; when it cannot be reached, the token is refused.

A token nobody pushed is asked to every eMSP with a tokens Sender interface; the first that knows it
decides, and the Token it returns is kept. Unknown everywhere, or nobody reachable: refused. A START_SESSION
or RESERVE_NOW of the last 15 minutes authorizes its token at that site without asking again (mod_commands).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
import logging
from typing import Any

from .context import Context
from .ocpi.client import PeerCallError
from .ocpi.schema import AUTHORIZATION_INFO, Invalid, validate
from .repo.core import CoreRepo
from .repo.peers import Peer, PeerRepo
from .repo.sessions import SessionRepo
from .repo.tokens import StoredToken, TokenRepo

_LOGGER = logging.getLogger(__name__)

COMMAND_GRACE = timedelta(minutes=15)


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The answer to "may this badge charge here?"."""

    allowed: bool
    auth_method: str  # WHITELIST, AUTH_REQUEST or COMMAND (as the Session will say)
    reason: str
    token: dict[str, Any] | None = None
    authorization_reference: str | None = None


class Unreachable(Exception):
    """The eMSP did not answer a real-time authorization."""


class Authorizer:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def authorize(self, site_id: str, id_tag: str, *, evse_uid: str | None = None) -> Decision:
        """Decide for ``id_tag`` at ``site_id`` (optionally one EVSE); remembered for the coming session."""
        decision = await self._decide(site_id, id_tag, evse_uid)
        _LOGGER.info(
            "Badge %s at %s: %s (%s)",
            id_tag,
            site_id,
            "allowed" if decision.allowed else "refused",
            decision.reason,
            extra={"site": site_id, "auth_method": decision.auth_method},
        )
        if decision.allowed and decision.token is not None:
            peer = await self._owner(decision.token)
            await SessionRepo(self.ctx.db).add_hint(
                site_id,
                id_tag,
                peer_id=peer.id if peer else None,
                token=decision.token,
                reference=decision.authorization_reference,
                now=self.ctx.clock(),
            )
        return decision

    async def offline_tokens(self) -> list[dict[str, Any]]:
        """Tokens a site may accept without asking us (valid; ALWAYS, ALLOWED or ALLOWED_OFFLINE)."""
        keys = ("country_code", "party_id", "uid", "type", "contract_id", "group_id", "whitelist")
        return [
            {key: token.body[key] for key in keys if key in token.body}
            for token in await TokenRepo(self.ctx.db).offline_list()
        ]

    async def _decide(self, site_id: str, id_tag: str, evse_uid: str | None) -> Decision:
        if await SessionRepo(self.ctx.db).recent_hint(site_id, id_tag, self.ctx.clock() - COMMAND_GRACE):
            return Decision(allowed=True, auth_method="COMMAND", reason="started by a command")
        known = await TokenRepo(self.ctx.db).by_uid(id_tag)
        if known:
            return await self._known(site_id, known[0], evse_uid)
        return await self._unknown(site_id, id_tag, evse_uid)

    async def _known(self, site_id: str, token: StoredToken, evse_uid: str | None) -> Decision:
        rule = token.whitelist
        if rule in {"ALWAYS", "ALLOWED"}:
            reason = f"whitelist {rule}, token {'valid' if token.valid else 'not valid'}"
            return Decision(allowed=token.valid, auth_method="WHITELIST", reason=reason, token=token.body)
        peer = await PeerRepo(self.ctx.db).get(token.peer_id)
        try:
            if peer is None:  # pragma: no cover - tokens of a deleted peer are not returned
                raise Unreachable
            answer = await self._ask(peer, site_id, token.body["uid"], token.body["type"], evse_uid)
        except Unreachable:
            if rule == "ALLOWED_OFFLINE":
                # Offline, the list decides: a token its eMSP invalidated stays refused.
                return Decision(
                    allowed=token.valid,
                    auth_method="WHITELIST",
                    reason="eMSP unreachable, ALLOWED_OFFLINE" + ("" if token.valid else ", token not valid"),
                    token=token.body,
                )
            return Decision(allowed=False, auth_method="AUTH_REQUEST", reason="eMSP unreachable, NEVER")
        if answer is None:
            return Decision(allowed=False, auth_method="AUTH_REQUEST", reason="unknown to its eMSP")
        return answer

    async def _unknown(self, site_id: str, id_tag: str, evse_uid: str | None) -> Decision:
        peers = [p for p in await PeerRepo(self.ctx.db).registered() if p.endpoint("tokens", "SENDER")]
        answers = await asyncio.gather(
            *(self._ask(peer, site_id, id_tag, "RFID", evse_uid) for peer in peers), return_exceptions=True
        )
        for answer in answers:
            if isinstance(answer, Decision):
                return answer
        reachable = any(not isinstance(answer, BaseException) for answer in answers)
        reason = "unknown token" if reachable or not peers else "no eMSP reachable"
        return Decision(allowed=False, auth_method="AUTH_REQUEST", reason=reason)

    async def _ask(self, peer: Peer, site_id: str, uid: str, token_type: str, evse_uid: str | None) -> Decision | None:
        """POST tokens/{uid}/authorize; None when the eMSP does not know the token, Unreachable on failure."""
        base = peer.endpoint("tokens", "SENDER")
        assert base is not None
        site = await CoreRepo(self.ctx.db).site(site_id)
        assert site is not None
        body: dict[str, Any] = {"location_id": site.id}
        if evse_uid:
            body["evse_uids"] = [evse_uid]
        to_party = (peer.parties("EMSP") or peer.parties())[0]
        try:
            answer = await self.ctx.client.call(
                peer,
                "POST",
                f"{base}/{uid}/authorize?type={token_type}",
                module="tokens",
                body=body,
                routing=((site.country_code, site.party_id), to_party),
                timeout=self.ctx.config.ocpi.realtime_auth_timeout,
            )
        except PeerCallError as err:
            raise Unreachable(str(err)) from err
        if answer.http_status == 404 or answer.status_code == 2004:
            return None
        if answer.http_status >= 500 or answer.status_code >= 3000:
            raise Unreachable(f"HTTP {answer.http_status}, status {answer.status_code}")
        if not answer.ok:
            return Decision(allowed=False, auth_method="AUTH_REQUEST", reason=f"eMSP answered {answer.status_code}")
        try:
            info = validate(AUTHORIZATION_INFO, answer.data)
        except Invalid as err:
            raise Unreachable(f"unreadable AuthorizationInfo: {err}") from None
        token = info["token"]
        if peer.owns(token["country_code"], token["party_id"]):
            await TokenRepo(self.ctx.db).put(peer.id, token)
        allowed = info["allowed"] == "ALLOWED"
        return Decision(
            allowed=allowed,
            auth_method="AUTH_REQUEST",
            reason=f"eMSP: {info['allowed']}",
            token=token,
            authorization_reference=info.get("authorization_reference"),
        )

    async def _owner(self, token: dict[str, Any]) -> Peer | None:
        for peer in await PeerRepo(self.ctx.db).registered():
            if peer.owns(token["country_code"], token["party_id"]):
                return peer
        return None
