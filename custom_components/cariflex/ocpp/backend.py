"""What the central system asks of its host (Home Assistant, a benchmark, a test)."""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from ..access import AuthResult
from .model import Charger


class Admission(StrEnum):
    """Decision at the websocket upgrade."""

    ACCEPT = "accept"
    UNAUTHORIZED = "unauthorized"  # HTTP 401: wrong or missing password
    REFUSE = "refuse"  # HTTP 404: this site does not serve this charger


class BootStatus(StrEnum):
    """Answer to BootNotification."""

    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


@dataclass(slots=True, frozen=True)
class BootDecision:
    """Status and the interval the charger waits before the next heartbeat or boot."""

    status: BootStatus
    interval: int


class CentralBackend(Protocol):
    """Services the protocol layer needs; implemented by the host application."""

    async def admit(self, charger_id: str, password: str | None, secure: bool) -> Admission:
        """Decide whether a websocket upgrade may proceed."""

    def charger(self, charger_id: str) -> Charger:
        """Return the model of an admitted charger (created if new)."""

    def boot(self, charger: Charger) -> BootDecision:
        """Answer a BootNotification (its info is already in ``charger.info``)."""

    def authorize(self, charger: Charger, id_tag: str) -> AuthResult:
        """Decide on an id tag."""

    async def authorize_async(self, charger: Charger, id_tag: str) -> AuthResult:
        """Decide on an id tag, asking a roaming network when the site does not know it (Authorize)."""

    def next_transaction_id(self) -> int:
        """A transaction id unique and increasing across restarts."""

    def changed(self, charger: Charger) -> None:
        """The charger's state changed: persist it (debounced)."""

    def connection_changed(self, charger: Charger) -> None:
        """The charger connected or disconnected."""

    def data_transfer(self, charger: Charger, vendor_id: str, message_id: str | None, data: str | None) -> str:
        """Handle a vendor DataTransfer; returns the status word."""

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run a follow-up task that outlives the message (tracked, cancelled on stop)."""
