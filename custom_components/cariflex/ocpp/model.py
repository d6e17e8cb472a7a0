"""The protocol-neutral charger model: Charger -> Connectors -> Session.

Every OCPP version adapter writes into these objects; entities, the EMS, the history
store and the uplink read them and never see raw OCPP. A charger notifies its listeners
once per processed message (:meth:`Charger.notify`), not once per value.

Connector 0 stands for the whole station (OCPP 1.6 connector 0); in OCPP 2.0.1 an EVSE
maps to a connector id here, so both versions give the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol


class ConnectorStatus(StrEnum):
    """Status of a connector, the union of OCPP 1.6 and 2.0.1 values."""

    AVAILABLE = "available"
    PREPARING = "preparing"
    CHARGING = "charging"
    SUSPENDED_EV = "suspended_ev"
    SUSPENDED_EVSE = "suspended_evse"
    FINISHING = "finishing"
    RESERVED = "reserved"
    UNAVAILABLE = "unavailable"
    FAULTED = "faulted"
    OCCUPIED = "occupied"
    UNKNOWN = "unknown"


class Availability(StrEnum):
    """Operative state asked of a connector or station."""

    OPERATIVE = "operative"
    INOPERATIVE = "inoperative"


class ResetKind(StrEnum):
    """Reset requested of a charger."""

    SOFT = "soft"
    HARD = "hard"


@dataclass(slots=True)
class Readings:
    """Latest measured values of one connector (SI units: W, A, V, Wh, %)."""

    power_w: float | None = None
    current_a: dict[str, float] = field(default_factory=dict)  # "L1", "L2", "L3"
    voltage_v: float | None = None
    energy_wh: float | None = None  # Energy.Active.Import.Register
    soc: float | None = None
    current_offered_a: float | None = None
    measured_at: datetime | None = None


@dataclass(slots=True)
class Session:
    """A charging session (OCPP transaction) on one connector."""

    transaction_id: str
    connector_id: int
    id_tag: str | None
    started_at: datetime
    meter_start_wh: float
    meter_now_wh: float
    stopped_at: datetime | None = None
    meter_stop_wh: float | None = None
    stop_reason: str | None = None
    reservation_id: int | None = None
    offline_start: bool = False

    @property
    def energy_wh(self) -> float:
        """Energy delivered so far (never negative)."""
        end = self.meter_stop_wh if self.meter_stop_wh is not None else self.meter_now_wh
        return max(0.0, end - self.meter_start_wh)

    def duration_s(self, now: datetime) -> float:
        """Seconds since the start, up to the stop when stopped."""
        end = self.stopped_at or now
        return max(0.0, (end - self.started_at).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for storage and diagnostics)."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["stopped_at"] = self.stopped_at.isoformat() if self.stopped_at else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        """Inverse of :meth:`as_dict`."""
        values = dict(data)
        values["started_at"] = datetime.fromisoformat(values["started_at"])
        if values.get("stopped_at"):
            values["stopped_at"] = datetime.fromisoformat(values["stopped_at"])
        return cls(**values)


@dataclass(slots=True)
class Connector:
    """One connector (or OCPP 2.0.1 EVSE) of a charger."""

    connector_id: int
    status: ConnectorStatus = ConnectorStatus.UNKNOWN
    error_code: str = "NoError"
    vendor_error_code: str | None = None
    info: str | None = None
    readings: Readings = field(default_factory=Readings)
    session: Session | None = None
    current_limit_a: float | None = None  # the limit we set through a charging profile
    limit_phases: int | None = None  # the phases that profile asks for (None: the charger's own)
    status_at: datetime | None = None


@dataclass(slots=True)
class ChargerInfo:
    """What a charger says about itself at boot."""

    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    meter_type: str | None = None
    meter_serial: str | None = None


class ChargerLink(Protocol):
    """The live connection of a charger, as the model's commands need it."""

    version: str

    async def call(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a raw CALL of the link's version."""

    async def remote_start(self, connector_id: int | None, id_tag: str) -> str:
        """Ask the charger to start a session; returns its status word."""

    async def remote_stop(self, transaction_id: str) -> str:
        """Ask the charger to stop a session."""

    async def reset(self, kind: ResetKind) -> str:
        """Reset the charger."""

    async def unlock(self, connector_id: int) -> str:
        """Unlock a connector."""

    async def set_availability(self, connector_id: int, availability: Availability) -> str:
        """Change the availability of a connector (0: whole charger)."""

    async def set_current_limit(self, connector_id: int, amps: float | None, phases: int | None = None) -> str:
        """Limit a connector's current with a Tx/TxDefault profile (None: remove), on ``phases`` if given."""


ENDED_KEPT = 100
Listener = Callable[["Charger"], None]
SessionListener = Callable[["Charger", Session], None]


@dataclass(eq=False)
class Charger:
    """A charge point as the rest of Cariflex sees it, whatever its OCPP version."""

    charger_id: str
    ocpp_version: str | None = None
    info: ChargerInfo = field(default_factory=ChargerInfo)
    connected: bool = False
    boot_status: str | None = None  # accepted / pending / rejected
    last_heartbeat: datetime | None = None
    last_seen: datetime | None = None
    connected_since: datetime | None = None
    disconnected_at: datetime | None = None
    connectors: dict[int, Connector] = field(default_factory=dict)
    configuration: dict[str, str | None] = field(default_factory=dict)
    firmware_status: str | None = None
    diagnostics_status: str | None = None
    phases: int = 3
    # OCPP 2.0.1 TransactionEvents already applied, as (transactionId, seqNo)
    seen_events: set[tuple[str, int]] = field(default_factory=set, repr=False)
    # Transactions that ended recently: a StopTransaction sent again is answered, not recorded twice
    ended_transactions: list[str] = field(default_factory=list, repr=False)
    link: ChargerLink | None = field(default=None, repr=False)
    _listeners: list[Listener] = field(default_factory=list, repr=False)
    _session_started: list[SessionListener] = field(default_factory=list, repr=False)
    _session_ended: list[SessionListener] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------ structure
    def connector(self, connector_id: int) -> Connector:
        """Return the connector, creating it the first time it is seen."""
        found = self.connectors.get(connector_id)
        if found is None:
            found = self.connectors[connector_id] = Connector(connector_id)
        return found

    @property
    def outlets(self) -> list[Connector]:
        """The real connectors (id >= 1), in order."""
        return [self.connectors[key] for key in sorted(self.connectors) if key > 0]

    def session_by_transaction(self, transaction_id: str) -> Session | None:
        """Find the running session with this transaction id."""
        for connector in self.connectors.values():
            if connector.session and connector.session.transaction_id == transaction_id:
                return connector.session
        return None

    # ------------------------------------------------------------ listeners
    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after every processed message; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def on_session(self, started: SessionListener | None = None, ended: SessionListener | None = None) -> None:
        """Subscribe to session start and end."""
        if started:
            self._session_started.append(started)
        if ended:
            self._session_ended.append(ended)

    def notify(self) -> None:
        """Tell every listener the charger changed (once per message)."""
        for listener in list(self._listeners):
            listener(self)

    def session_started(self, session: Session) -> None:
        """Record a new session on its connector and tell subscribers."""
        self.connector(session.connector_id).session = session
        for listener in list(self._session_started):
            listener(self, session)

    def session_ended(self, session: Session) -> None:
        """Detach a finished session from its connector and tell subscribers."""
        connector = self.connectors.get(session.connector_id)
        if connector and connector.session is session:
            connector.session = None
        self.ended_transactions.append(session.transaction_id)
        del self.ended_transactions[:-ENDED_KEPT]
        for listener in list(self._session_ended):
            listener(self, session)

    # ------------------------------------------------------------ lifecycle
    def set_connected(self, link: ChargerLink | None, now: datetime | None = None) -> None:
        """Bind or drop the live connection."""
        self.link = link
        self.connected = link is not None
        if link is not None:
            self.ocpp_version = link.version
            self.connected_since = now or datetime.now(UTC)
            self.disconnected_at = None
        else:
            self.disconnected_at = now or datetime.now(UTC)
        self.notify()

    def snapshot(self) -> dict[str, Any]:
        """What must survive a restart: identity, energy registers and open sessions."""
        return {
            "ocpp_version": self.ocpp_version,
            "info": asdict(self.info),
            "phases": self.phases,
            "ended_transactions": self.ended_transactions[-ENDED_KEPT:],
            "connectors": {
                str(cid): {
                    "energy_wh": c.readings.energy_wh,
                    "current_limit_a": c.current_limit_a,
                    "limit_phases": c.limit_phases,
                    "session": c.session.as_dict() if c.session else None,
                }
                for cid, c in self.connectors.items()
            },
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Inverse of :meth:`snapshot`."""
        self.ocpp_version = data.get("ocpp_version")
        self.info = ChargerInfo(**data.get("info", {}))
        self.phases = int(data.get("phases", 3))
        self.ended_transactions = list(data.get("ended_transactions", []))
        for key, value in data.get("connectors", {}).items():
            connector = self.connector(int(key))
            connector.readings.energy_wh = value.get("energy_wh")
            connector.current_limit_a = value.get("current_limit_a")
            connector.limit_phases = value.get("limit_phases")
            if value.get("session"):
                connector.session = Session.from_dict(value["session"])
