"""What the OCPP 1.6 and 2.0.1 adapters share: dispatch, follow-ups, and our current limits.

A version adapter says how its messages read and write the charger model; this base
holds the rules that do not depend on the version: a message is handled only after an
accepted boot (when the charger was held at Pending), the model notifies its listeners
once per message, follow-up requests wait until the answer is on the wire, and our limits
are TxProfile/TxDefaultProfile with fixed ids that we can find, replace, clear and re-send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
import logging
from typing import Any, ClassVar, Self

from .backend import BootStatus, CentralBackend
from .common import utcnow
from .errors import NotSupportedError, SecurityError
from .meter import Sample, apply_samples, energy_register
from .model import Charger, Connector, Session
from .rpc import RpcEndpoint

_LOGGER = logging.getLogger(__name__)

# Our profiles have fixed ids per connector, so a new limit replaces the previous one.
TX_DEFAULT_PROFILE_ID = 1000
TX_PROFILE_ID = 2000
PROFILE_STACK_LEVEL = 1
DEFAULT_VOLTAGE = 230.0

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]] | dict[str, Any]]
FollowUp = Callable[[], Coroutine[Any, Any, None]]


def our_profile_ids(connector_id: int) -> set[int]:
    """The ids of the profiles Cariflex sets on a connector."""
    return {TX_PROFILE_ID + connector_id, TX_DEFAULT_PROFILE_ID + connector_id}


class AdapterBase:
    """One connected charger, whatever its OCPP version."""

    version: ClassVar[str]
    STACK_LEVEL_KEY: ClassVar[str]  # configuration key holding the charger's maximum stack level
    ACKNOWLEDGED: ClassVar[frozenset[str]] = frozenset()  # answered {} without being handled

    def __init__(
        self, charger: Charger, backend: CentralBackend, endpoint_factory: Callable[[Self], RpcEndpoint]
    ) -> None:
        self.charger = charger
        self.backend = backend
        self._followups: list[tuple[FollowUp, str]] = []
        self.endpoint = endpoint_factory(self)
        self._handlers: dict[str, Handler] = self.handlers()

    def handlers(self) -> dict[str, Handler]:
        """The messages this version handles."""
        raise NotImplementedError

    # ------------------------------------------------------------- dispatch
    async def handle(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Route one validated CALL from the charger; the model notifies once per message."""
        handler = self._handlers.get(action)
        if handler is None:
            if action in self.ACKNOWLEDGED:
                return {}
            raise NotSupportedError(f"{action} is not handled by this central system")
        if self.charger.boot_status in (BootStatus.PENDING, BootStatus.REJECTED) and action != "BootNotification":
            raise SecurityError("BootNotification not accepted yet")
        self.charger.last_seen = utcnow()
        result = handler(payload)
        response = await result if isinstance(result, Awaitable) else result
        self.charger.notify()
        self.backend.changed(self.charger)
        return response

    def follow_up(self, factory: FollowUp, name: str) -> None:
        """Run ``factory()`` once the answer to the current message has been sent."""
        self._followups.append((factory, name))

    def flush_followups(self) -> None:
        """Start the follow-ups of the message just answered."""
        while self._followups:
            factory, name = self._followups.pop(0)
            self.backend.spawn(factory(), f"{self.charger.charger_id} {name}")

    async def call(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a raw CALL of this version."""
        return await self.endpoint.call(action, payload, timeout)

    async def _status(self, action: str, payload: dict[str, Any]) -> str:
        return str((await self.call(action, payload))["status"])

    # ------------------------------------------------------------ our limits
    def rate_unit(self) -> str:
        """'A' when the charger accepts current, else 'W'."""
        raise NotImplementedError

    def stack_level(self) -> int:
        """Our stack level, within the charger's maximum (the default when it does not say)."""
        raw = self.charger.configuration.get(self.STACK_LEVEL_KEY)
        try:
            maximum = int(raw) if raw is not None else PROFILE_STACK_LEVEL
        except ValueError:
            maximum = PROFILE_STACK_LEVEL
        return max(0, min(PROFILE_STACK_LEVEL, maximum))

    def limit_in_rate_unit(self, connector: Connector, amps: float, phases: int | None = None) -> tuple[str, float]:
        """The limit as the charger takes it: amps, or watts over the phases used (the charger's by default)."""
        unit = self.rate_unit()
        if unit == "W":
            voltage = connector.readings.voltage_v or DEFAULT_VOLTAGE
            return unit, round(amps * voltage * (phases or self.charger.phases), 1)
        return unit, round(amps, 1)

    def schedule_period(self, connector: Connector, amps: float, phases: int | None) -> tuple[str, dict[str, Any]]:
        """The rate unit and the one period of our profile; ``numberPhases`` only when we switch phases."""
        unit, limit = self.limit_in_rate_unit(connector, amps, phases)
        period: dict[str, Any] = {"startPeriod": 0, "limit": limit}
        if phases is not None:
            period["numberPhases"] = phases
        return unit, period

    def charging_profile(self, connector_id: int, amps: float, phases: int | None = None) -> dict[str, Any]:
        """A TxProfile for the running session, else a TxDefaultProfile (never a station maximum)."""
        raise NotImplementedError

    async def _send_profile(self, connector_id: int, profile: dict[str, Any]) -> str:
        raise NotImplementedError

    async def _clear_profile(self, profile_id: int) -> str:
        raise NotImplementedError

    async def set_current_limit(self, connector_id: int, amps: float | None, phases: int | None = None) -> str:
        """Limit a connector (None: remove our limit), on ``phases`` when the charger switches phases.

        The model keeps the limit and the phases in force.
        """
        connector = self.charger.connector(connector_id)
        if amps is None:
            statuses = [
                await self._clear_profile(profile_id)
                for profile_id in (TX_PROFILE_ID + connector_id, TX_DEFAULT_PROFILE_ID + connector_id)
            ]
            connector.current_limit_a = None
            connector.limit_phases = None
            self.charger.notify()
            self.backend.changed(self.charger)
            return "Accepted" if "Accepted" in statuses else statuses[-1]
        status = await self._send_profile(connector_id, self.charging_profile(connector_id, amps, phases))
        if status == "Accepted":
            connector.current_limit_a = amps
            connector.limit_phases = phases
            self.charger.notify()
            self.backend.changed(self.charger)
        return status

    async def reapply_limits(self) -> None:
        """Send our limits again (after a reconnect or a reboot)."""
        for connector in self.charger.outlets:
            if connector.current_limit_a is not None:
                try:
                    await self.set_current_limit(
                        connector.connector_id, connector.current_limit_a, connector.limit_phases
                    )
                except Exception as err:  # noqa: BLE001 - a follow-up never breaks the connection
                    _LOGGER.debug("%s: re-sending limit failed: %s", self.charger.charger_id, err)

    def apply_meter_value(
        self, connector_id: int, session: Session | None, samples: list[Sample], measured_at: datetime
    ) -> None:
        """Fold one meter value into the connector's readings and the session's energy.

        A late (queued) value may still raise the session's energy but never moves the live
        readings back; the energy register never decreases (TOTAL_INCREASING stays honest).
        """
        readings = self.charger.connector(connector_id).readings
        energy = energy_register(samples)
        if session is not None and energy is not None:
            session.meter_now_wh = max(session.meter_now_wh, energy)
        if readings.measured_at is not None and measured_at < readings.measured_at:
            return
        before = readings.energy_wh
        apply_samples(readings, samples, measured_at)
        if before is not None and readings.energy_wh is not None and readings.energy_wh < before:
            readings.energy_wh = before

    def forget_cleared_limits(
        self, profile_id: int | None, connector_id: int | None, purpose: str | None, stack_level: int | None
    ) -> None:
        """A ClearChargingProfile was accepted: forget our limits it removed.

        By id: only our profile with that id. By criteria: a connector id (absent = every
        connector; 0 = the station's own profiles, never ours), a purpose and a stack level,
        each of which must match our profiles when given.
        """

        def cleared(connector: Connector) -> bool:
            if profile_id is not None:
                return profile_id in our_profile_ids(connector.connector_id)
            return (
                connector_id in (None, connector.connector_id)
                and purpose in (None, "TxProfile", "TxDefaultProfile")
                and stack_level in (None, self.stack_level())
            )

        changed = False
        for connector in self.charger.outlets:
            if connector.current_limit_a is not None and cleared(connector):
                connector.current_limit_a = None
                connector.limit_phases = None
                changed = True
        if changed:
            self.charger.notify()
            self.backend.changed(self.charger)
