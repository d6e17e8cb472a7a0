"""Roaming badges at the sites: the uplink's ``authorize`` answers and the token lists sites keep offline.

Glue between :class:`~cloud_connector.authorization.Authorizer` (the whitelist rules towards the eMSPs) and
:class:`~cloud_connector.uplink.SiteHub` (``docs/uplink.md``, "Roaming badges"). A site gets the tokens it may
accept on its own (valid; ALWAYS, ALLOWED or ALLOWED_OFFLINE) after each welcome, then every change an eMSP
pushes (PUT, PATCH) or a real-time authorization teaches us, as a delta, whatever its whitelist.
"""

from __future__ import annotations

from collections.abc import Mapping
import logging
from typing import Any, Final

from .authorization import Authorizer, Decision
from .context import Context
from .repo.inventory import InventoryRepo
from .repo.tokens import TokenRepo
from .uplink import AuthorizationAnswer, SiteHub

_LOGGER = logging.getLogger(__name__)

IDENTITY: Final = ("country_code", "party_id", "uid", "type", "contract_id", "issuer", "group_id")
"""What an ``authorize_result`` tells of a token."""
ENTRY: Final = (*IDENTITY, "whitelist", "valid", "last_updated")
"""What a ``tokens`` entry holds."""
EMSP_REFUSALS: Final = frozenset({"BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED"})


def site_token(body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``tokens`` entry of an OCPI Token."""
    return {key: body[key] for key in ENTRY if body.get(key) is not None}


def allowed_word(decision: Decision) -> str:
    """The ``allowed`` of an ``authorize_result`` for one of :class:`Authorizer`'s decisions.

    Read from the decision's reason ("eMSP: BLOCKED", "unknown token", ...); any refusal not
    recognised stays a refusal (INVALID).
    """
    if decision.allowed:
        return "ACCEPTED"
    if decision.reason.startswith("eMSP: ") and decision.reason[6:] in EMSP_REFUSALS:
        return decision.reason[6:]
    if decision.reason in {"unknown token", "unknown to its eMSP"}:
        return "UNKNOWN"
    return "INVALID"


class SiteRoaming:
    """What :class:`SiteHub` calls for roaming badges, and the hook for token changes."""

    def __init__(self, ctx: Context, authorizer: Authorizer, hub: SiteHub) -> None:
        self.ctx = ctx
        self.authorizer = authorizer
        self.hub = hub

    def install(self) -> None:
        """Answer the sites' ``authorize`` frames and send them the list after each welcome."""
        self.hub.set_authorizer(self.authorize)
        self.hub.set_token_provider(self.tokens)

    async def authorize(
        self, site_id: str, uid: str, charger_id: str | None, evse_id: int | None
    ) -> AuthorizationAnswer:
        """Decide for a site's badge (the session that follows is bound to the decision, see ``Authorizer``)."""
        evse_uid = None
        if charger_id is not None and evse_id is not None:
            evse = await InventoryRepo(self.ctx.db).evse_at(site_id, charger_id, evse_id)
            evse_uid = evse.uid if evse else None
        before = [known.body for known in await TokenRepo(self.ctx.db).by_uid(uid)]
        decision = await self.authorizer.authorize(site_id, uid, evse_uid=evse_uid)
        token = decision.token
        if token is not None and decision.auth_method == "AUTH_REQUEST":
            await self._learnt(token, before)
        return AuthorizationAnswer(
            allowed=allowed_word(decision),
            whitelist=token.get("whitelist") if token else None,
            token={key: token[key] for key in IDENTITY if token.get(key) is not None} if token else None,
            reason=decision.reason,
        )

    async def tokens(self) -> list[dict[str, Any]]:
        """The full list a site keeps: the tokens it may accept on its own (``Authorizer.offline_tokens``)."""
        return [site_token(token.body) for token in await TokenRepo(self.ctx.db).offline_list()]

    async def token_changed(self, body: Mapping[str, Any]) -> None:
        """An eMSP pushed a token: the connected sites get it as a delta (sent after the request)."""
        entry = site_token(body)
        self.ctx.spawn(self._broadcast(entry), name=f"roaming delta {entry.get('uid')}")

    async def _broadcast(self, entry: dict[str, Any]) -> None:
        count = await self.hub.broadcast_tokens([entry])
        _LOGGER.debug("Roaming token %s sent to %d sites", entry.get("uid"), count)

    async def _learnt(self, token: Mapping[str, Any], before: list[dict[str, Any]]) -> None:
        """A real-time answer may have stored a new or changed Token (the eMSP's own): the sites get it too."""
        stored = await TokenRepo(self.ctx.db).get(token["country_code"], token["party_id"], token["uid"], token["type"])
        if stored is not None and stored.body not in before:
            await self.token_changed(stored.body)
