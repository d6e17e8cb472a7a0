"""The site's central-system policy: which chargers may connect, boot, and charge.

Pure Python (no Home Assistant): the host passes callbacks for persistence, discovery
and background tasks. Implements :class:`CentralBackend`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
import hashlib
import hmac
import logging
import secrets
import time
from typing import Any

from ..access import AuthResult, BadgeList
from .backend import Admission, BootDecision, BootStatus
from .model import Charger, Session

_LOGGER = logging.getLogger(__name__)

# Seconds since 2020-01-01: seeds transaction ids from time, so that they keep
# increasing even if the stored counter were lost, and fit a signed 32-bit integer.
TRANSACTION_EPOCH = 1_577_836_800
PBKDF2_ITERATIONS = 120_000
PENDING_RETRY_S = 30
ROAMING_ANSWER_TTL = timedelta(minutes=5)  # an Authorize answer holds for the StartTransaction that follows


class UnknownChargerPolicy(StrEnum):
    """What to do with a charger the site does not know."""

    ACCEPT = "accept"
    REFUSE = "refuse"
    ASK = "ask"  # keep it Pending and raise a discovery the user confirms


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Salted PBKDF2-SHA256; the stored form is ``pbkdf2_sha256$iterations$salt$hash``."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against :func:`hash_password` output."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:  # a corrupt stored hash refuses the password, it never fails the upgrade
        return False
    return hmac.compare_digest(candidate.hex(), digest)


class TransactionCounter:
    """Transaction ids unique and increasing across restarts."""

    def __init__(self, last: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.last = last
        self._clock = clock

    def next(self) -> int:
        """The next id: above the last one and never below the time seed."""
        self.last = max(self.last + 1, int(self._clock()) - TRANSACTION_EPOCH)
        return self.last


@dataclass(slots=True)
class ChargerConfig:
    """A charger the site knows (a charger sub-entry in Home Assistant)."""

    charger_id: str
    name: str = ""
    password_hash: str | None = None


class SiteBackend:
    """Central-system policy for one site."""

    def __init__(
        self,
        *,
        policy: UnknownChargerPolicy = UnknownChargerPolicy.ACCEPT,
        heartbeat_interval: int = 300,
        badges: BadgeList | None = None,
        counter: TransactionCounter | None = None,
        on_change: Callable[[Charger], None] | None = None,
        on_connection: Callable[[Charger], None] | None = None,
        on_unknown_charger: Callable[[str, bool], None] | None = None,
        on_data_transfer: Callable[[Charger, str, str | None, str | None], str] | None = None,
        on_session_ended: Callable[[Charger, Session], None] | None = None,
        spawn: Callable[[Coroutine[Any, Any, Any], str], None] | None = None,
    ) -> None:
        self.policy = policy
        self.heartbeat_interval = heartbeat_interval
        self.badges = badges if badges is not None else BadgeList()
        # Asks a roaming network about a badge the site does not know (the cloud connector's eMSPs).
        self.roaming: Callable[[Charger, str], Awaitable[AuthResult | None]] | None = None
        self._roaming_answers: dict[str, tuple[AuthResult, datetime]] = {}
        self.counter = counter if counter is not None else TransactionCounter()
        self.known: dict[str, ChargerConfig] = {}
        self.chargers: dict[str, Charger] = {}
        self._on_change = on_change
        self._on_connection = on_connection
        self._on_unknown = on_unknown_charger
        self._on_data_transfer = on_data_transfer
        self._on_session_ended = on_session_ended
        self._spawn = spawn
        self._tasks: set[asyncio.Task[Any]] = set()
        self._verified: dict[str, str] = {}  # charger id -> hash + password last verified (memory only)

    # ------------------------------------------------------------- registry
    def set_known(self, configs: list[ChargerConfig]) -> None:
        """Replace the list of known chargers."""
        self.known = {config.charger_id: config for config in configs}
        self._verified = {
            k: v
            for k, v in self._verified.items()
            if k in self.known and v.startswith(self.known[k].password_hash or "\0")
        }

    def charger(self, charger_id: str) -> Charger:
        found = self.chargers.get(charger_id)
        if found is None:
            found = self.chargers[charger_id] = Charger(charger_id)
            found.on_session(ended=self._session_ended)
        return found

    def _session_ended(self, charger: Charger, session: Session) -> None:
        if self._on_session_ended:
            self._on_session_ended(charger, session)

    # -------------------------------------------------------- CentralBackend
    async def admit(self, charger_id: str, password: str | None, secure: bool) -> Admission:
        config = self.known.get(charger_id)
        if config is not None:
            if not config.password_hash:
                return Admission.ACCEPT
            if password is None:
                return Admission.UNAUTHORIZED
            token = config.password_hash + hashlib.sha256(password.encode()).hexdigest()
            if self._verified.get(charger_id) == token:
                return Admission.ACCEPT
            # PBKDF2 takes tens of milliseconds: never on the event loop.
            ok = await asyncio.get_running_loop().run_in_executor(None, verify_password, password, config.password_hash)
            if not ok:
                return Admission.UNAUTHORIZED
            self._verified[charger_id] = token
            return Admission.ACCEPT
        if self.policy is UnknownChargerPolicy.REFUSE:
            return Admission.REFUSE
        if self._on_unknown:
            self._on_unknown(charger_id, self.policy is UnknownChargerPolicy.ACCEPT)
        if self.policy is UnknownChargerPolicy.ACCEPT:
            self.known.setdefault(charger_id, ChargerConfig(charger_id))
        else:
            # Held until the user confirms: nothing but a BootNotification is served.
            self.charger(charger_id).boot_status = BootStatus.PENDING
        return Admission.ACCEPT

    def boot(self, charger: Charger) -> BootDecision:
        if charger.charger_id in self.known:
            return BootDecision(BootStatus.ACCEPTED, self.heartbeat_interval)
        if self.policy is UnknownChargerPolicy.ASK:
            return BootDecision(BootStatus.PENDING, PENDING_RETRY_S)
        return BootDecision(BootStatus.REJECTED, PENDING_RETRY_S)

    def authorize(self, charger: Charger, id_tag: str) -> AuthResult:
        now = datetime.now(UTC)
        if self.badges.get(id_tag) is None and (cached := self._roaming_answers.get(id_tag.casefold())):
            result, until = cached
            if until > now:
                return result  # a roaming badge just authorized (Authorize, then StartTransaction)
        return self.badges.authorize(id_tag, now)

    async def authorize_async(self, charger: Charger, id_tag: str) -> AuthResult:
        """The site's own list first; a badge it does not know is asked of the roaming network (if any)."""
        local = self.authorize(charger, id_tag)
        if self.roaming is None or self.badges.get(id_tag) is not None:
            return local
        try:
            answer = await self.roaming(charger, id_tag)
        except Exception:  # a roaming failure never breaks the charger's session
            _LOGGER.exception("%s: roaming authorization of %s failed", charger.charger_id, id_tag)
            return local
        if answer is None:
            return local
        self._roaming_answers[id_tag.casefold()] = (answer, datetime.now(UTC) + ROAMING_ANSWER_TTL)
        return answer

    def next_transaction_id(self) -> int:
        return self.counter.next()

    def changed(self, charger: Charger) -> None:
        if self._on_change:
            self._on_change(charger)

    def connection_changed(self, charger: Charger) -> None:
        if self._on_connection:
            self._on_connection(charger)

    def data_transfer(self, charger: Charger, vendor_id: str, message_id: str | None, data: str | None) -> str:
        if self._on_data_transfer:
            return self._on_data_transfer(charger, vendor_id, message_id, data)
        return "UnknownVendorId"

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        if self._spawn is not None:
            self._spawn(coro, name)
            return
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_tasks(self) -> None:
        """Cancel follow-up tasks started without a host spawner."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
