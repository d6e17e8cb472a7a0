"""Roaming badges end to end: an eMSP (OCPI), the real cloud service, a real site over the uplink.

The eMSP pushes its tokens, the cloud syncs them to the site and relays the site's real-time questions;
when the eMSP goes down the cloud applies the whitelist rules, and when the cloud is out of reach the
site applies them to its own copy of the list.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud_connector.authorization import Decision
from cloud_connector.roaming import allowed_word, site_token
from cloud_connector.timeutil import format_dt
from custom_components.cariflex.access.roaming import DecisionSource, RoamingStatus, Whitelist
from custom_components.cariflex.uplink import AsyncRoamingTokenStore, AsyncUplinkQueue, UplinkClient, UplinkState
from tests.conftest import free_port, wait_for

from .harness import Cpo, connected, inventory
from .test_ocpi_push import FAST

pytestmark = pytest.mark.usefixtures("socket_enabled")

ACCEPTED, INVALID, UNKNOWN = RoamingStatus.ACCEPTED, RoamingStatus.INVALID, RoamingStatus.UNKNOWN
CLOUD, LIST, NONE = DecisionSource.CLOUD, DecisionSource.LIST, DecisionSource.NONE


class RoamingSite:
    """A site: its queue, its roaming list and its uplink client (to the CPO, or to a closed port)."""

    def __init__(self, queue: AsyncUplinkQueue, store: AsyncRoamingTokenStore, client: UplinkClient) -> None:
        self.queue = queue
        self.store = store
        self.client = client

    async def entry(self, uid: str) -> dict[str, Any] | None:
        """The site's entry for ``uid``, its time as the cloud wrote it (``format_dt``)."""
        found = await self.store.lookup(uid)
        return None if found is None else found.as_wire() | {"last_updated": format_dt(found.last_updated)}


@asynccontextmanager
async def roaming_site(url: str, token: str, tmp_path: Path) -> AsyncIterator[RoamingSite]:
    async with aiohttp.ClientSession() as http:
        queue = await AsyncUplinkQueue.open(tmp_path / "site.queue.db")
        store = await AsyncRoamingTokenStore.open(tmp_path / "site.tokens.db")
        client = UplinkClient(
            http, url, token, queue, _accept, roaming=store, backoff_initial=0.02, backoff_max=0.1, heartbeat=10.0
        )
        client.start()
        try:
            yield RoamingSite(queue, store, client)
        finally:
            await wait_for(lambda: client.state is not UplinkState.CONNECTING)
            await client.stop()
            await queue.close()
            await store.close()


async def _accept(name: str, charger_id: str, args: dict[str, Any]) -> tuple[str, str]:
    return "accepted", ""


def uplink_url(cpo: Cpo) -> str:
    return cpo.url.replace("http://", "ws://") + "/uplink/v1"


async def register(cpo: Cpo, site_id: str = "s1") -> str:
    made = await cpo.ok("register-site", "--name", "Home", "--id", site_id)
    return str(made["token"])


async def push(msp: Any, token: dict[str, Any]) -> None:
    status, body, _ = await msp.module(
        "PUT", "tokens", f"/{token['country_code']}/{token['party_id']}/{token['uid']}", token
    )
    assert status in (200, 201), body


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(5):
        while not await check():
            await asyncio.sleep(0.01)


def asked(msp: Any) -> list[Any]:
    return [r for r in msp.state.received if r.path.endswith("/authorize")]


async def test_allowed_offline_token_with_the_emsp_down(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        site_token_secret = await register(cpo)
        always = msp.add_token("ROAM-A", whitelist="ALWAYS")
        never = msp.add_token("ROAM-N", whitelist="NEVER")
        await push(msp, always)
        await push(msp, never)
        async with roaming_site(uplink_url(cpo), site_token_secret, tmp_path) as site:
            # After the welcome: the full list, with what a site may accept on its own (not NEVER).
            await wait_for(lambda: site.store.synced_at is not None)
            assert site.store.count == 1
            assert await site.entry("roam-a") == site_token(always)
            await site.queue.append("inventory", inventory(), _now())
            await wait_for(lambda: site.queue.length == 0)
            # The eMSP pushes an ALLOWED_OFFLINE token: the site gets it as a delta.
            offline = msp.add_token("ROAM-O", whitelist="ALLOWED_OFFLINE", group_id="FLEET-7")
            await push(msp, offline)
            await wait_for(lambda: site.store.count == 2)
            assert await site.entry("ROAM-O") == site_token(offline)

            # The eMSP is up: the site asks, the cloud asks the eMSP.
            decision = await site.client.authorize("roam-o", "CP1", evse_id=1)
            assert (decision.status, decision.source) == (ACCEPTED, CLOUD)
            assert (decision.whitelist, decision.parent_id_tag) == (Whitelist.ALLOWED_OFFLINE, "FLEET-7")
            assert decision.token is not None
            assert decision.token.contract_id == offline["contract_id"]
            assert asked(msp)[-1].body == {"location_id": "s1", "evse_uids": ["s1-CP1-1"]}
            # ALWAYS: the site decides on its own.
            count = len(asked(msp))
            decision = await site.client.authorize("ROAM-A", "CP1")
            assert (decision.status, decision.source) == (ACCEPTED, LIST)

            # The eMSP goes down: the cloud cannot get an answer and applies the whitelist rule.
            await msp.go_down()
            decision = await site.client.authorize("ROAM-O", "CP1")
            assert (decision.status, decision.source, decision.reason) == (
                ACCEPTED,
                CLOUD,
                "eMSP unreachable, ALLOWED_OFFLINE",
            )
            decision = await site.client.authorize("ROAM-N", "CP1")
            assert (decision.status, decision.source, decision.reason) == (INVALID, CLOUD, "eMSP unreachable, NEVER")
            assert decision.ocpp_status.value == "Invalid"
            assert len(asked(msp)) == count  # nobody answered the last two

        # The site restarts without its cloud: its own list and the same rules.
        async with roaming_site(f"ws://127.0.0.1:{free_port()}/uplink/v1", site_token_secret, tmp_path) as site:
            assert site.store.count == 2
            outcomes = {}
            for uid in ("ROAM-O", "ROAM-A", "ROAM-N", "STRANGER"):
                decision = await site.client.authorize(uid, "CP1", timeout=0.5)
                outcomes[uid] = (decision.status, decision.source)
            assert outcomes == {
                "ROAM-O": (ACCEPTED, LIST),  # ALLOWED_OFFLINE: the eMSP cannot be asked, allowed
                "ROAM-A": (ACCEPTED, LIST),
                "ROAM-N": (UNKNOWN, NONE),  # NEVER tokens are not on the list: real-time or nothing
                "STRANGER": (UNKNOWN, NONE),
            }


async def test_emsp_answers_and_changes_reach_the_site(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        secret = await register(cpo)
        async with roaming_site(uplink_url(cpo), secret, tmp_path) as site:
            await wait_for(lambda: site.store.synced_at is not None)
            assert site.store.count == 0
            # A PATCH that invalidates a token reaches the site.
            always = msp.add_token("P1", whitelist="ALWAYS")
            await push(msp, always)
            await wait_for(lambda: site.store.count == 1)
            status, body, _ = await msp.module(
                "PATCH", "tokens", "/NL/EMS/P1", {"valid": False, "last_updated": "2099-01-01T00:00:00Z"}
            )
            assert (status, body["status_code"]) == (200, 1000)
            await eventually(lambda: _valid_is(site, "P1", False))
            decision = await site.client.authorize("P1", "CP1")
            assert (decision.status, decision.source) == (INVALID, LIST)
            # A token the eMSP never pushed: asked in real time, then known to the site too.
            msp.add_token("LEARNT", whitelist="ALWAYS")
            decision = await site.client.authorize("LEARNT", "CP1")
            assert (decision.status, decision.source) == (ACCEPTED, CLOUD)
            await wait_for(lambda: site.store.count == 2)
            count = len(asked(msp))
            decision = await site.client.authorize("LEARNT", "CP1")
            assert (decision.status, decision.source) == (ACCEPTED, LIST)
            assert len(asked(msp)) == count
            # The eMSP's AllowedType comes through; unknown tokens are UNKNOWN; an eMSP error is a refusal.
            await push(msp, msp.add_token("N1", whitelist="NEVER"))
            await wait_for(lambda: site.store.count == 3)  # NEVER tokens come as deltas (the site refuses them offline)
            fresh = site.store.fresh_at
            msp.authorize_answer["N1"] = {"allowed": "NO_CREDIT"}
            assert (await site.client.authorize("N1", "CP1")).status is RoamingStatus.NO_CREDIT
            await asyncio.sleep(0.1)
            assert site.store.fresh_at == fresh  # the eMSP returned the token the site has: no delta
            assert (await site.client.authorize("NOBODY", "CP1")).status is UNKNOWN
            msp.authorize_status["N1"] = (200, 2002)
            decision = await site.client.authorize("N1", "CP9", evse_id=3)  # an EVSE the cloud does not know
            assert (decision.status, decision.reason) == (INVALID, "eMSP answered 2002")
            assert asked(msp)[-1].body == {"location_id": "s1"}


async def _valid_is(site: RoamingSite, uid: str, valid: bool) -> bool:
    entry = await site.entry(uid)
    return entry is not None and entry["valid"] is valid


@pytest.mark.parametrize(
    ("reason", "allowed", "word"),
    [
        ("eMSP: ALLOWED", True, "ACCEPTED"),
        ("started by a command", True, "ACCEPTED"),
        ("whitelist ALWAYS, token valid", True, "ACCEPTED"),
        ("eMSP: BLOCKED", False, "BLOCKED"),
        ("eMSP: EXPIRED", False, "EXPIRED"),
        ("eMSP: NOT_ALLOWED", False, "NOT_ALLOWED"),
        ("eMSP: NO_CREDIT", False, "NO_CREDIT"),
        ("eMSP: MAYBE", False, "INVALID"),
        ("unknown token", False, "UNKNOWN"),
        ("unknown to its eMSP", False, "UNKNOWN"),
        ("no eMSP reachable", False, "INVALID"),
        ("eMSP unreachable, NEVER", False, "INVALID"),
        ("whitelist ALWAYS, token not valid", False, "INVALID"),
        ("eMSP answered 2002", False, "INVALID"),
    ],
)
def test_allowed_words(reason: str, allowed: bool, word: str) -> None:
    assert allowed_word(Decision(allowed=allowed, auth_method="AUTH_REQUEST", reason=reason)) == word


async def test_an_invalidated_allowed_offline_token_is_refused_with_the_emsp_down(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        await register(cpo)
        await push(msp, msp.add_token("GONE", whitelist="ALLOWED_OFFLINE", valid=False))
        await msp.go_down()
        decision = await cpo.service.authorizer.authorize("s1", "GONE")
        assert not decision.allowed, decision.reason


def _now() -> datetime:
    return datetime.now(UTC)
