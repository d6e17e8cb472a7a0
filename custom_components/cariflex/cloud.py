"""The site's optional link to the Cariflex cloud connector (protocol: ``docs/uplink.md``).

What the site sends — its inventory, every connector status, each session's start, progress
and end — goes first into a store-and-forward SQLite queue (``.storage/``), then out on one
outbound websocket (:mod:`.uplink`, pure). The cloud's commands (start, stop, unlock, reserve,
cancel, session caps) run here as the same OCPP actions as Home Assistant's. The energy
manager never waits for the cloud: the site works the same when it is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from homeassistant.const import CONF_LATITUDE, CONF_LONGITUDE
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.storage import STORAGE_DIR
from homeassistant.util import dt as dt_util

from .access import AuthResult
from .access.roaming import DecisionSource
from .const import (
    CONF_CLOUD_ADDRESS,
    CONF_CLOUD_CITY,
    CONF_CLOUD_COUNTRY,
    CONF_CLOUD_POSTAL_CODE,
    CONF_CLOUD_TOKEN,
    CONF_CLOUD_URL,
    CONF_MAX_CURRENT,
    CONF_PHASES,
    CONF_SITE_NAME,
    CONF_VOLTAGE,
    DEFAULT_MAX_CURRENT,
    DEFAULT_VOLTAGE,
    DOMAIN,
)
from .issues import RepairIssue
from .ocpp.model import Charger, ConnectorStatus, Session
from .ocpp.v16 import STATUS_MAP
from .ocpp.v201 import CONNECTOR_STATUS
from .uplink import (
    AsyncRoamingTokenStore,
    AsyncUplinkQueue,
    QueueClosedError,
    QueueError,
    UplinkClient,
    UplinkState,
)

if TYPE_CHECKING:
    from .coordinator import ChargerCoordinator
    from .runtime import CariflexRuntime

_LOGGER = logging.getLogger(__name__)

UPDATE_EVERY = timedelta(seconds=60)  # a running session's progress, at most once a minute
RESULTS = {"accepted": "accepted", "rejected": "rejected", "scheduled": "accepted", "unlocked": "accepted"}


OCPP_STATUS: dict[ConnectorStatus, str] = {status: word for word, status in (STATUS_MAP | CONNECTOR_STATUS).items()}
"""The model's statuses as OCPP spells them (what the uplink carries): the adapters' maps, inverted."""


def command_result(response: dict[str, Any]) -> str:
    """The uplink result word of a charger's answer (``status`` Accepted/Rejected/Unlocked...)."""
    status = str(response.get("status", "")).casefold()
    return RESULTS.get(status, "rejected")


class CloudLink:
    """The uplink of one site: its queue, its websocket client and what feeds them."""

    def __init__(self, hass: HomeAssistant, runtime: CariflexRuntime) -> None:
        self.hass = hass
        self.runtime = runtime
        self.url = str(runtime.setting(CONF_CLOUD_URL))
        self.token = str(runtime.setting(CONF_CLOUD_TOKEN))
        self.queue: AsyncUplinkQueue | None = None
        self.roaming: AsyncRoamingTokenStore | None = None
        self.client: UplinkClient | None = None
        self._auth_methods: dict[str, str] = {}  # id tag -> AUTH_REQUEST (the cloud said) or WHITELIST
        self._statuses: dict[tuple[str, int], str] = {}
        self._updates: dict[str, datetime] = {}
        self._listeners: list[Callable[[], None]] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self._auth_issue = RepairIssue(hass, runtime.entry.entry_id, "cloud_auth_failed", ir.IssueSeverity.ERROR)

    @property
    def path(self) -> Path:
        """The queue's SQLite file, beside Home Assistant's own storage."""
        return Path(self.hass.config.path(STORAGE_DIR, f"{DOMAIN}_uplink_{self.runtime.entry.entry_id}.db"))

    # ------------------------------------------------------------ lifecycle
    async def async_start(self) -> None:
        """Open the queue, connect, send the inventory, follow every charger."""
        await self.hass.async_add_executor_job(lambda: self.path.parent.mkdir(parents=True, exist_ok=True))
        self.queue = await AsyncUplinkQueue.open(self.path)
        self.roaming = await AsyncRoamingTokenStore.open(
            self.path.with_name(self.path.name.replace("uplink", "roaming"))
        )
        self.client = UplinkClient(
            async_get_clientsession(self.hass),
            self.url,
            self.token,
            self.queue,
            self._async_command,
            roaming=self.roaming,
        )
        self._unsubscribe.append(self.client.add_listener(self._changed))
        self.client.start()
        self.runtime.on_new_charger(self._follow)
        await self.async_send_inventory()

    async def async_stop(self) -> None:
        """Stop the client, then close the queue (what is queued stays for the next start)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self.client is not None:
            await self.client.stop()
        if self.roaming is not None:
            await self.roaming.close()
        if self.queue is not None:
            await self.queue.close()

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` when the link's state or queue changes (for the entities)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @callback
    def _changed(self) -> None:
        self._auth_issue_update()
        for listener in list(self._listeners):
            listener()

    @callback
    def _auth_issue_update(self) -> None:
        failed = self.client is not None and self.client.state is UplinkState.AUTH_FAILED
        self._auth_issue.set(failed, {"url": self.url})

    # ---------------------------------------------------------------- badges
    async def async_authorize(self, charger: Charger, id_tag: str) -> AuthResult | None:
        """A badge the site does not know: the roaming network's answer (None when nobody could say)."""
        if self.client is None:
            return None
        decision = await self.client.authorize(id_tag, charger.charger_id)
        if decision.source is DecisionSource.NONE:
            return None
        self._auth_methods[id_tag] = "AUTH_REQUEST" if decision.source is DecisionSource.CLOUD else "WHITELIST"
        _LOGGER.info("Roaming badge %s at %s: %s (%s)", id_tag, charger.charger_id, decision.status, decision.reason)
        return AuthResult(decision.ocpp_status, None, decision.parent_id_tag)

    # ---------------------------------------------------------------- events
    async def _append(self, kind: str, data: dict[str, Any]) -> None:
        if self.queue is None:
            return
        try:
            await self.queue.append(kind, data, dt_util.utcnow())
        except QueueClosedError:  # the site stops: the next start sends the inventory afresh
            _LOGGER.debug("Uplink event %s after the queue closed: not queued", kind)
        except QueueError as err:
            _LOGGER.error("Uplink event %s not queued: %s", kind, err)

    def _spawn(self, kind: str, data: dict[str, Any]) -> None:
        self.runtime.spawn(self._append(kind, data), f"cariflex uplink {kind}")

    async def async_send_inventory(self) -> None:
        """The whole site: location and every charger with its connectors."""
        await self._append("inventory", self.inventory())

    def inventory(self) -> dict[str, Any]:
        """The ``inventory`` event's data."""
        setting = self.runtime.setting
        voltage = float(setting(CONF_VOLTAGE, DEFAULT_VOLTAGE))
        chargers = []
        for coordinator in self.runtime.coordinators.values():
            charger = coordinator.charger
            phases = 1 if int(coordinator.settings.get(CONF_PHASES, 3)) == 1 else 3
            amps = float(coordinator.settings.get(CONF_MAX_CURRENT, DEFAULT_MAX_CURRENT))
            outlets = sorted(c.connector_id for c in charger.outlets) or [1]
            chargers.append(
                {
                    "id": charger.charger_id,
                    "vendor": charger.info.vendor,
                    "model": charger.info.model,
                    "ocpp_version": charger.ocpp_version,
                    "evses": [
                        {
                            "evse_id": outlet,
                            "connectors": [
                                {
                                    "id": 1,
                                    "standard": "IEC_62196_T2",
                                    "format": "SOCKET",
                                    "power_type": "AC_1_PHASE" if phases == 1 else "AC_3_PHASE",
                                    "max_voltage": round(voltage),
                                    "max_amperage": round(amps),
                                    "max_electric_power": round(amps * voltage * phases),
                                }
                            ],
                        }
                        for outlet in outlets
                    ],
                }
            )
        return {
            "site": {
                "name": setting(CONF_SITE_NAME) or self.runtime.entry.title,
                "address": setting(CONF_CLOUD_ADDRESS, ""),
                "city": setting(CONF_CLOUD_CITY, ""),
                "postal_code": setting(CONF_CLOUD_POSTAL_CODE, ""),
                "country": setting(CONF_CLOUD_COUNTRY, "FRA"),
                "latitude": getattr(self.hass.config, CONF_LATITUDE),
                "longitude": getattr(self.hass.config, CONF_LONGITUDE),
                "time_zone": self.hass.config.time_zone,
            },
            "chargers": chargers,
        }

    @callback
    def _follow(self, coordinator: ChargerCoordinator) -> None:
        """Send this charger's statuses and sessions from now on (and the new inventory)."""
        charger = coordinator.charger
        self._unsubscribe.append(charger.add_listener(self._charger_changed))
        charger.on_session(started=self._session_started, ended=self._session_ended)
        if self.queue is not None:
            self.runtime.spawn(self.async_send_inventory(), "cariflex uplink inventory")

    @callback
    def _charger_changed(self, charger: Charger) -> None:
        outlets = charger.outlets if charger.connected else []
        if not charger.connected and self._statuses.get((charger.charger_id, 0)) != "Offline":
            self._statuses[(charger.charger_id, 0)] = "Offline"
            self._spawn("status", {"charger_id": charger.charger_id, "status": "Offline"})
        elif charger.connected:
            self._statuses.pop((charger.charger_id, 0), None)
        now = dt_util.utcnow()
        for connector in outlets:
            key = (charger.charger_id, connector.connector_id)
            status = OCPP_STATUS.get(connector.status, "Unknown")
            if self._statuses.get(key) != status:
                self._statuses[key] = status
                self._spawn(
                    "status",
                    {
                        "charger_id": charger.charger_id,
                        "evse_id": connector.connector_id,
                        "connector_id": 1,
                        "status": status,
                        "error_code": connector.error_code,
                    },
                )
            session = connector.session
            if session is None:
                continue
            last = self._updates.get(session.transaction_id)
            if last is not None and now - last < UPDATE_EVERY:
                continue
            self._updates[session.transaction_id] = now
            self._spawn(
                "session_update",
                {
                    "session_id": self._session_id(charger, session),
                    "energy_wh": round(session.energy_wh, 1),
                    "power_w": connector.readings.power_w,
                    "current_a": max(connector.readings.current_a.values(), default=None),
                    "at": now.isoformat(),
                },
            )

    @staticmethod
    def _session_id(charger: Charger, session: Session) -> str:
        return f"{charger.charger_id}:{session.transaction_id}"

    @callback
    def _session_started(self, charger: Charger, session: Session) -> None:
        self._updates[session.transaction_id] = dt_util.utcnow()
        self._spawn(
            "session_start",
            {
                "session_id": self._session_id(charger, session),
                "charger_id": charger.charger_id,
                "evse_id": session.connector_id,
                "connector_id": 1,
                "id_tag": session.id_tag,
                "auth_method": self._auth_methods.get(session.id_tag or "", "WHITELIST"),
                "start": session.started_at.isoformat(),
                "meter_start_wh": session.meter_start_wh,
            },
        )

    @callback
    def _session_ended(self, charger: Charger, session: Session) -> None:
        self._updates.pop(session.transaction_id, None)
        stop = session.stopped_at or dt_util.utcnow()
        self._spawn(
            "session_end",
            {
                "session_id": self._session_id(charger, session),
                "stop": stop.isoformat(),
                "meter_stop_wh": session.meter_stop_wh,
                "energy_wh": round(session.energy_wh, 1),
                "reason": session.stop_reason,
                "meter_curve": [
                    [session.started_at.isoformat(), 0.0],
                    [stop.isoformat(), round(session.energy_wh, 1)],
                ],
            },
        )

    # -------------------------------------------------------------- commands
    async def _async_command(self, name: str, charger_id: str, args: dict[str, Any]) -> tuple[str, str]:
        """Run one of the cloud's commands on a charger of this site: (result, detail)."""
        from .services import async_run_ocpp_action

        coordinator = self.runtime.coordinators.get(charger_id)
        if coordinator is None:
            return "unknown_charger", f"no charger {charger_id} on this site"
        charger = coordinator.charger
        try:
            if name in ("set_charging_profile", "clear_charging_profile"):
                return await self._session_cap(charger, name, args)
            action, data = self._ocpp_request(charger, name, args)
            response = await async_run_ocpp_action(charger, action, data)
        except ServiceValidationError as err:
            return "rejected", str(err)
        except HomeAssistantError as err:
            return ("timeout" if "timeout" in str(err).casefold() else "failed"), str(err)
        except (KeyError, ValueError, TypeError) as err:
            return "rejected", f"bad arguments: {err}"
        return command_result(response), str(response.get("status", ""))

    @staticmethod
    def _ocpp_request(charger: Charger, name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if name == "start_session":
            return "remote_start_transaction", {"id_tag": str(args["id_tag"]), "connector_id": int(args["evse_id"])}
        if name == "stop_session":
            transaction = str(args["session_id"]).rpartition(":")[2]
            return "remote_stop_transaction", {"transaction_id": transaction}
        if name == "unlock_connector":
            return "unlock_connector", {"connector_id": int(args["evse_id"])}
        if name == "reserve_now":
            expiry = dt_util.parse_datetime(str(args["expiry"]))
            if expiry is None:
                raise ValueError(f"expiry {args['expiry']!r} is not a date")
            return "reserve_now", {
                "connector_id": int(args.get("evse_id") or 0),
                "expiry_date": expiry,
                "id_tag": str(args["id_tag"]),
                "reservation_id": int(args["reservation_id"]),
            }
        if name == "cancel_reservation":
            return "cancel_reservation", {"reservation_id": int(args["reservation_id"])}
        raise ValueError(f"unknown command {name!r} for {charger.charger_id}")

    async def _session_cap(self, charger: Charger, name: str, args: dict[str, Any]) -> tuple[str, str]:
        """A session cap from the cloud (OCPI charging profile): the energy manager keeps under it."""
        transaction = str(args["session_id"]).rpartition(":")[2]
        connector = next((c for c in charger.outlets if c.session and c.session.transaction_id == transaction), None)
        if connector is None:
            return "rejected", f"no running session {args['session_id']}"
        key = f"{charger.charger_id}/{connector.connector_id}"
        if name == "clear_charging_profile":
            self.runtime.session_caps_w.pop(key, None)
        else:
            limit = float(args["limit_w"])
            if limit < 0:
                raise ValueError("limit_w must be >= 0")
            self.runtime.session_caps_w[key] = limit
        if self.runtime.energy is not None:
            await self.runtime.energy.async_refresh()
        return "accepted", ""
