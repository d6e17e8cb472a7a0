"""Site policy: passwords, transaction ids, admission, boot, callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

import pytest

from custom_components.cariflex.access import AuthMode, AuthStatus, Badge, BadgeList
from custom_components.cariflex.ocpp import site as site_module
from custom_components.cariflex.ocpp.backend import Admission, BootDecision, BootStatus
from custom_components.cariflex.ocpp.model import Charger, Session
from custom_components.cariflex.ocpp.site import (
    PBKDF2_ITERATIONS,
    PENDING_RETRY_S,
    TRANSACTION_EPOCH,
    ChargerConfig,
    SiteBackend,
    TransactionCounter,
    UnknownChargerPolicy,
    hash_password,
    verify_password,
)

SECRET = "s3cret-Passw0rd"


# ------------------------------------------------------------------------------ passwords
def test_hash_and_verify() -> None:
    stored = hash_password(SECRET)
    scheme, iterations, salt, digest = stored.split("$")
    assert scheme == "pbkdf2_sha256"
    assert int(iterations) == PBKDF2_ITERATIONS
    assert len(bytes.fromhex(salt)) == 16
    assert len(digest) == 64
    assert SECRET not in stored
    assert verify_password(SECRET, stored)
    assert not verify_password(SECRET + "x", stored)
    assert not verify_password("", stored)


def test_hash_is_salted() -> None:
    assert hash_password(SECRET) != hash_password(SECRET)
    salt = bytes(range(16))
    assert hash_password(SECRET, salt) == hash_password(SECRET, salt)
    assert hash_password(SECRET, salt).split("$")[2] == salt.hex()


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain-text-password",
        "a$b$c",
        "md5$1000$00$00",
    ],
)
def test_verify_rejects_malformed_hashes(stored: str) -> None:
    assert not verify_password(SECRET, stored)


@pytest.mark.parametrize("stored", ["pbkdf2_sha256$1000$zz$00", "pbkdf2_sha256$many$00$00"])
def test_verify_rejects_corrupt_hashes(stored: str) -> None:
    assert not verify_password(SECRET, stored)


# ------------------------------------------------------------------------ transaction ids
class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_counter_seeded_from_time_and_increasing() -> None:
    clock = Clock(TRANSACTION_EPOCH + 1_000)
    counter = TransactionCounter(clock=clock)
    assert counter.next() == 1_000
    assert counter.next() == 1_001, "two ids in the same second still increase"
    clock.now += 10_000
    assert counter.next() == 11_000, "time moves the floor up"
    assert counter.last == 11_000


def test_counter_survives_restart_and_clock_going_back() -> None:
    clock = Clock(TRANSACTION_EPOCH + 5_000)
    counter = TransactionCounter(clock=clock)
    ids = [counter.next() for _ in range(3)]
    # restart: the stored last id comes back, the clock is now behind
    restarted = TransactionCounter(last=counter.last, clock=Clock(TRANSACTION_EPOCH + 10))
    assert restarted.next() == ids[-1] + 1
    # restart after the stored counter was lost: seeded from the clock, still above
    lost = TransactionCounter(clock=Clock(TRANSACTION_EPOCH + 5_100))
    assert lost.next() > ids[-1]


def test_counter_fits_int32_for_decades() -> None:
    in_2080 = datetime(2080, 1, 1, tzinfo=UTC).timestamp()
    assert TransactionCounter(clock=Clock(in_2080)).next() < 2**31 - 1
    assert TransactionCounter().next() > 0, "the default clock is the real time"


def test_backend_next_transaction_id_uses_counter() -> None:
    backend = SiteBackend(counter=TransactionCounter(last=41, clock=Clock(TRANSACTION_EPOCH)))
    assert backend.next_transaction_id() == 42
    assert backend.next_transaction_id() == 43


# ------------------------------------------------------------------------------ admission
class Unknowns:
    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    def __call__(self, charger_id: str, accepted: bool) -> None:
        self.seen.append((charger_id, accepted))


async def test_known_without_password() -> None:
    backend = SiteBackend(policy=UnknownChargerPolicy.REFUSE)
    backend.set_known([ChargerConfig("CP1")])
    assert await backend.admit("CP1", None, False) is Admission.ACCEPT
    assert await backend.admit("CP1", "anything", False) is Admission.ACCEPT


async def test_known_with_password(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = SiteBackend(policy=UnknownChargerPolicy.ACCEPT)
    backend.set_known([ChargerConfig("CP1", "Garage", hash_password(SECRET))])
    assert await backend.admit("CP1", None, False) is Admission.UNAUTHORIZED
    assert await backend.admit("CP1", "wrong", False) is Admission.UNAUTHORIZED
    assert await backend.admit("CP1", "", True) is Admission.UNAUTHORIZED
    assert await backend.admit("CP1", SECRET, False) is Admission.ACCEPT

    # the verified password is remembered: no second PBKDF2 run
    runs: list[str] = []
    original = site_module.verify_password

    def counting(password: str, stored: str) -> bool:
        runs.append(password)
        return original(password, stored)

    monkeypatch.setattr(site_module, "verify_password", counting)
    assert await backend.admit("CP1", SECRET, False) is Admission.ACCEPT
    assert runs == []
    assert await backend.admit("CP1", "wrong", False) is Admission.UNAUTHORIZED
    assert runs == ["wrong"]


async def test_changed_password_forgets_verification() -> None:
    backend = SiteBackend()
    backend.set_known([ChargerConfig("CP1", password_hash=hash_password(SECRET))])
    assert await backend.admit("CP1", SECRET, False) is Admission.ACCEPT
    backend.set_known([ChargerConfig("CP1", password_hash=hash_password(SECRET))])  # same password, new salt
    assert backend._verified == {}
    backend.set_known([ChargerConfig("CP1", password_hash=hash_password("other"))])
    assert await backend.admit("CP1", SECRET, False) is Admission.UNAUTHORIZED
    assert await backend.admit("CP1", "other", False) is Admission.ACCEPT
    stored = backend.known["CP1"].password_hash
    backend.set_known([ChargerConfig("CP1", password_hash=stored)])  # unchanged: verification kept
    assert "CP1" in backend._verified
    backend.set_known([ChargerConfig("CP1")])  # password removed
    assert backend._verified == {}
    assert await backend.admit("CP1", None, False) is Admission.ACCEPT
    backend.set_known([])
    assert backend.known == {}


async def test_unknown_accept() -> None:
    unknowns = Unknowns()
    backend = SiteBackend(policy=UnknownChargerPolicy.ACCEPT, on_unknown_charger=unknowns)
    assert await backend.admit("NEW", "whatever", False) is Admission.ACCEPT
    assert unknowns.seen == [("NEW", True)]
    assert "NEW" in backend.known
    assert backend.charger("NEW").boot_status is None
    assert backend.boot(backend.charger("NEW")) == BootDecision(BootStatus.ACCEPTED, 300)


async def test_unknown_refuse() -> None:
    unknowns = Unknowns()
    backend = SiteBackend(policy=UnknownChargerPolicy.REFUSE, on_unknown_charger=unknowns)
    assert await backend.admit("NEW", None, False) is Admission.REFUSE
    assert unknowns.seen == []
    assert "NEW" not in backend.known
    # a charger still connected when the policy became "refuse" is rejected at boot
    assert backend.boot(backend.charger("NEW")) == BootDecision(BootStatus.REJECTED, PENDING_RETRY_S)


async def test_unknown_ask() -> None:
    unknowns = Unknowns()
    backend = SiteBackend(policy=UnknownChargerPolicy.ASK, heartbeat_interval=60, on_unknown_charger=unknowns)
    assert await backend.admit("NEW", None, False) is Admission.ACCEPT
    assert unknowns.seen == [("NEW", False)]
    assert "NEW" not in backend.known
    assert backend.charger("NEW").boot_status is BootStatus.PENDING, "held until confirmed, even before a boot"
    assert backend.boot(backend.charger("NEW")) == BootDecision(BootStatus.PENDING, PENDING_RETRY_S)
    backend.set_known([ChargerConfig("NEW")])  # the user confirmed the discovery
    assert backend.boot(backend.charger("NEW")) == BootDecision(BootStatus.ACCEPTED, 60)


async def test_unknown_without_callback() -> None:
    backend = SiteBackend(policy=UnknownChargerPolicy.ASK)
    assert await backend.admit("NEW", None, False) is Admission.ACCEPT


# ------------------------------------------------------------------------------ callbacks
def test_charger_registry_and_session_end_callback() -> None:
    ended: list[tuple[str, str]] = []
    backend = SiteBackend(on_session_ended=lambda c, s: ended.append((c.charger_id, s.transaction_id)))
    charger = backend.charger("CP1")
    assert backend.charger("CP1") is charger
    assert backend.chargers == {"CP1": charger}
    now = datetime.now(UTC)
    charger.session_ended(Session("7", 1, "TAG", now, 0.0, 0.0))
    assert ended == [("CP1", "7")]
    # without a callback nothing happens
    SiteBackend().charger("CP2").session_ended(Session("8", 1, None, now, 0.0, 0.0))


def test_authorize_uses_the_badge_list() -> None:
    badges = BadgeList(AuthMode.LIST)
    badges.upsert(Badge("TAG1"))
    backend = SiteBackend(badges=badges)
    charger = backend.charger("CP1")
    assert backend.authorize(charger, "tag1").status is AuthStatus.ACCEPTED
    assert backend.authorize(charger, "TAG2").status is AuthStatus.INVALID
    assert SiteBackend().authorize(charger, "TAG2").status is AuthStatus.ACCEPTED, "open by default"


def test_change_connection_and_data_transfer_callbacks() -> None:
    changed: list[str] = []
    connections: list[str] = []
    transfers: list[tuple[str, str, str | None, str | None]] = []

    def transfer(charger: Charger, vendor: str, message: str | None, data: str | None) -> str:
        transfers.append((charger.charger_id, vendor, message, data))
        return "Accepted"

    backend = SiteBackend(
        on_change=lambda c: changed.append(c.charger_id),
        on_connection=lambda c: connections.append(c.charger_id),
        on_data_transfer=transfer,
    )
    charger = backend.charger("CP1")
    backend.changed(charger)
    backend.connection_changed(charger)
    assert backend.data_transfer(charger, "acme", "hello", "{}") == "Accepted"
    assert changed == ["CP1"]
    assert connections == ["CP1"]
    assert transfers == [("CP1", "acme", "hello", "{}")]

    bare = SiteBackend()
    bare.changed(charger)
    bare.connection_changed(charger)
    assert bare.data_transfer(charger, "acme", None, None) == "UnknownVendorId"


async def test_spawn_with_host_spawner() -> None:
    spawned: list[str] = []

    def spawner(coro: Coroutine[Any, Any, Any], name: str) -> None:
        spawned.append(name)
        coro.close()

    backend = SiteBackend(spawn=spawner)
    backend.spawn(asyncio.sleep(0), "CP1 after boot")
    assert spawned == ["CP1 after boot"]
    assert backend._tasks == set()


async def test_spawn_and_cancel_own_tasks() -> None:
    backend = SiteBackend()
    done: list[str] = []

    async def quick() -> None:
        done.append("quick")

    backend.spawn(quick(), "quick")
    backend.spawn(asyncio.sleep(60), "slow")
    assert len(backend._tasks) == 2
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert done == ["quick"]
    assert len(backend._tasks) == 1, "finished tasks are forgotten"
    (slow,) = backend._tasks
    await backend.cancel_tasks()
    assert slow.cancelled()
    await asyncio.sleep(0)
    assert backend._tasks == set()
    await backend.cancel_tasks()  # nothing left: no-op


async def test_a_badge_the_site_does_not_know_is_asked_of_the_roaming_network() -> None:
    from custom_components.cariflex.access import AuthMode, AuthResult, AuthStatus, BadgeList
    from custom_components.cariflex.ocpp.model import Charger
    from custom_components.cariflex.ocpp.site import SiteBackend

    backend = SiteBackend(badges=BadgeList(AuthMode.LIST))
    charger = Charger("CP1")
    assert (await backend.authorize_async(charger, "ROAMER")).status is AuthStatus.INVALID  # no roaming network
    answers: dict[str, AuthResult | None] = {"ROAMER": AuthResult(AuthStatus.ACCEPTED, None, "FLEET")}

    async def roaming(_charger: Charger, id_tag: str) -> AuthResult | None:
        if id_tag == "BROKEN":
            raise RuntimeError("cloud exploded")
        return answers.get(id_tag)

    backend.roaming = roaming
    assert await backend.authorize_async(charger, "ROAMER") == AuthResult(AuthStatus.ACCEPTED, None, "FLEET")
    # The StartTransaction that follows is decided from that answer, without asking again.
    answers.clear()
    assert backend.authorize(charger, "roamer").status is AuthStatus.ACCEPTED
    # Nobody knows the badge, or the network fails: the site's own rule (list mode: refused).
    assert (await backend.authorize_async(charger, "NOBODY")).status is AuthStatus.INVALID
    assert (await backend.authorize_async(charger, "BROKEN")).status is AuthStatus.INVALID
