"""The running site: central system, policy, storage and coordinators of one entry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
import logging
from typing import Any

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY, ConfigEntry, ConfigSubentry
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, discovery_flow
from homeassistant.helpers.event import async_track_state_change_event, async_track_time_interval
from homeassistant.helpers.storage import Store

from .access import AuthMode, Badge, BadgeList
from .cloud import CloudLink
from .const import (
    CONF_AUTH_MODE,
    CONF_CALL_TIMEOUT,
    CONF_CERTFILE,
    CONF_CHARGER_ID,
    CONF_CLOUD_TOKEN,
    CONF_CLOUD_URL,
    CONF_GRID_POWER_ENTITY,
    CONF_HEARTBEAT_INTERVAL,
    CONF_KEYFILE,
    CONF_PASSWORD_HASH,
    CONF_PROFILE,
    CONF_PV_FORECAST_ENTITY,
    CONF_SITE_NAME,
    CONF_UNKNOWN_CHARGERS,
    CONF_WS_PORT,
    CONF_WSS_PORT,
    DASHBOARD_FORECAST_S,
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_WS_PORT,
    DOMAIN,
    EVENT_DATA_TRANSFER,
    EVENT_SESSION_ENDED,
    HISTORY_LIMIT,
    MANUFACTURER,
    ROLE_GRID,
    STORAGE_VERSION,
    SUBENTRY_BOARD,
    SUBENTRY_CHARGER,
    SUBENTRY_METER,
    ZNI_EVIDENCE_LIMIT,
)
from .coordinator import ChargerCoordinator
from .energy import EnergyCoordinator, read_power_w
from .meters import MeterCoordinator, async_load_profile
from .modbus import Reading
from .ocpp.model import Charger, Session
from .ocpp.server import CentralSystem, build_ssl_context
from .ocpp.site import ChargerConfig, SiteBackend, TransactionCounter, UnknownChargerPolicy
from .uplink import QueueError

_LOGGER = logging.getLogger(__name__)

SAVE_DELAY_S = 2.0

type CariflexConfigEntry = ConfigEntry[CariflexRuntime]
ChargerCallback = Callable[[ChargerCoordinator], None]


def entry_setting(entry: ConfigEntry[Any], key: str, default: Any = None) -> Any:
    """A site setting: options override the data of the entry."""
    if key in entry.options:
        return entry.options[key]
    return entry.data.get(key, default)


class CariflexRuntime:
    """Everything a loaded site entry owns (``entry.runtime_data``)."""

    def __init__(self, hass: HomeAssistant, entry: CariflexConfigEntry) -> None:
        self.hass = hass
        self.entry = entry
        self.store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}")
        self.badges = BadgeList(AuthMode(entry_setting(entry, CONF_AUTH_MODE, AuthMode.OPEN)))
        self.history: list[dict[str, Any]] = []
        self.backend = SiteBackend(
            policy=UnknownChargerPolicy(entry_setting(entry, CONF_UNKNOWN_CHARGERS, UnknownChargerPolicy.ACCEPT)),
            heartbeat_interval=int(entry_setting(entry, CONF_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_INTERVAL)),
            badges=self.badges,
            on_change=self._charger_changed,
            on_connection=self._charger_changed,
            on_unknown_charger=self._unknown_charger,
            on_data_transfer=self._data_transfer,
            on_session_ended=self._session_ended,
            spawn=self.spawn,
        )
        self.central: CentralSystem | None = None
        self.coordinators: dict[str, ChargerCoordinator] = {}
        self._charger_callbacks: list[ChargerCallback] = []
        self.settings_signature = self.signature(entry)
        self.hub_device_id: str | None = None
        self.ems_mode = "off"
        self.charge_modes: dict[str, str] = {}  # per connector (charger/connector): off, now, min_pv, pv
        self.tariff_policies: dict[str, str] = {}  # per connector: ignore, offpeak, avoid_red...
        self.zni_evidence: list[dict[str, Any]] = []  # every ZNI signal change and the caps applied
        self.departures: dict[str, str] = {}  # per connector: the car leaves at (HH:MM:SS, local)
        self.energy_needs: dict[str, float] = {}  # per connector: kWh to add before it leaves
        self.soc_targets: dict[str, float] = {}  # per connector: the state of charge (%) wanted at departure
        self.battery_capacities: dict[str, float] = {}  # per connector: the car's usable battery (kWh)
        self.session_caps_w: dict[str, float] = {}  # per connector: a cap set by the cloud (OCPI charging profile)
        self.cloud: CloudLink | None = None
        self.energy: EnergyCoordinator | None = None
        self.meters: dict[str, MeterCoordinator] = {}
        self._meter_callbacks: list[Callable[[MeterCoordinator], None]] = []
        self._stopping = False
        self._meter_lock = asyncio.Lock()
        self._board_ids: set[str] = set()
        self._board_callbacks: list[Callable[[str, str], None]] = []

    def setting(self, key: str, default: Any = None) -> Any:
        """A site setting (options override the entry data)."""
        return entry_setting(self.entry, key, default)

    @staticmethod
    def signature(entry: ConfigEntry[Any]) -> tuple[Any, ...]:
        """What requires a reload when it changes (not the charger sub-entries)."""
        return (tuple(sorted(entry.data.items())), tuple(sorted(entry.options.items())))

    # ---------------------------------------------------------------- lifecycle
    async def async_start(self) -> None:
        """Load the stored state and open the OCPP ports (OSError if taken)."""
        stored = await self.store.async_load() or {}
        self.backend.counter = TransactionCounter(int(stored.get("transaction_counter", 0)))
        for raw in stored.get("badges", []):
            self.badges.upsert(Badge.from_dict(raw))
        self.history = list(stored.get("history", []))[-HISTORY_LIMIT:]
        self.ems_mode = str(stored.get("ems_mode", "off"))
        self.charge_modes = {str(k): str(v) for k, v in stored.get("charge_modes", {}).items()}
        self.tariff_policies = {str(k): str(v) for k, v in stored.get("tariff_policies", {}).items()}
        self.zni_evidence = list(stored.get("zni_evidence", []))[-ZNI_EVIDENCE_LIMIT:]
        self.departures = {str(k): str(v) for k, v in stored.get("departures", {}).items()}
        self.energy_needs = {str(k): float(v) for k, v in stored.get("energy_needs", {}).items()}
        self.soc_targets = {str(k): float(v) for k, v in stored.get("soc_targets", {}).items()}
        self.battery_capacities = {str(k): float(v) for k, v in stored.get("battery_capacities", {}).items()}
        for charger_id, snapshot in stored.get("chargers", {}).items():
            self.backend.charger(charger_id).restore(snapshot)
        self._register_hub()
        self.async_sync_chargers()
        self.async_sync_boards()

        ssl_context = None
        certfile = entry_setting(self.entry, CONF_CERTFILE)
        if certfile and entry_setting(self.entry, CONF_WSS_PORT):
            ssl_context = await self.hass.async_add_executor_job(
                build_ssl_context, certfile, entry_setting(self.entry, CONF_KEYFILE)
            )
        self.central = CentralSystem(
            self.backend,
            port=int(entry_setting(self.entry, CONF_WS_PORT, DEFAULT_WS_PORT) or 0) or None,
            tls_port=int(entry_setting(self.entry, CONF_WSS_PORT, 0) or 0) or None,
            ssl_context=ssl_context,
            call_timeout=float(entry_setting(self.entry, CONF_CALL_TIMEOUT, DEFAULT_CALL_TIMEOUT)),
        )
        await self.central.start()
        await self.async_sync_meters()
        self.energy = EnergyCoordinator(self.hass, self.entry, self)
        energy = self.energy

        def signal_changed() -> None:
            self.entry.async_create_background_task(
                self.hass, energy.async_request_refresh(), "cariflex grid or tariff signal change"
            )

        energy.zni.start(self.entry.async_on_unload, signal_changed)
        energy.tariffs.start(self.entry.async_on_unload, signal_changed)
        if not self.setting(CONF_PV_FORECAST_ENTITY):  # the Energy dashboard's solar forecast, if any
            forecast = energy.planning.dashboard
            self.entry.async_on_unload(
                async_track_time_interval(self.hass, forecast.async_refresh, timedelta(seconds=DASHBOARD_FORECAST_S))
            )
            self.entry.async_create_background_task(self.hass, forecast.async_refresh(), "cariflex solar forecast")
        if grid_entity := self.setting(CONF_GRID_POWER_ENTITY):

            @callback
            def grid_changed(event: Event[EventStateChangedData]) -> None:
                energy.meter_moved(read_power_w(event.data["new_state"]))

            self.entry.async_on_unload(async_track_state_change_event(self.hass, [grid_entity], grid_changed))
        if self.setting(CONF_CLOUD_URL) and self.setting(CONF_CLOUD_TOKEN):
            cloud = CloudLink(self.hass, self)
            try:
                await cloud.async_start()
            except QueueError as err:  # the site runs on without its uplink
                _LOGGER.error("Cloud connector link not started: %s", err)
                await cloud.async_stop()
            else:
                self.cloud = cloud
                self.backend.roaming = cloud.async_authorize

    async def async_stop(self) -> None:
        """Close the ports, stop listening, write the state."""
        self._stopping = True  # a meter sync still reading its device adds nothing any more
        if self.cloud is not None:
            await self.cloud.async_stop()
        if self.energy is not None:
            await self.energy.async_shutdown()
        for meter in self.meters.values():
            await meter.async_close()
        if self.central is not None:
            await self.central.stop()
        for coordinator in self.coordinators.values():
            coordinator.shutdown()
        await self.store.async_save(self._data_to_save())

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """A tracked background task, cancelled when the entry unloads."""
        self.entry.async_create_background_task(self.hass, coro, name)

    # ------------------------------------------------------------- storage
    def _data_to_save(self) -> dict[str, Any]:
        return {
            "transaction_counter": self.backend.counter.last,
            "chargers": {
                cid: charger.snapshot() for cid, charger in self.backend.chargers.items() if cid in self.backend.known
            },
            "badges": [badge.as_dict() for badge in self.badges.all()],
            "history": self.history[-HISTORY_LIMIT:],
            "ems_mode": self.ems_mode,
            "charge_modes": self.charge_modes,
            "tariff_policies": self.tariff_policies,
            "zni_evidence": self.zni_evidence[-ZNI_EVIDENCE_LIMIT:],
            "departures": self.departures,
            "energy_needs": self.energy_needs,
            "soc_targets": self.soc_targets,
            "battery_capacities": self.battery_capacities,
        }

    @callback
    def async_save(self) -> None:
        """Schedule a (debounced) write of the state."""
        self.store.async_delay_save(self._data_to_save, SAVE_DELAY_S)

    @callback
    def _charger_changed(self, charger: Charger) -> None:
        if charger.charger_id in self.backend.known:
            self.async_save()

    @callback
    def _session_started(self, _charger: Charger, _session: Session) -> None:
        """A new car draws power: share again now, not at the next tick.

        A session that ends waits for the next tick instead: until the grid meter sees the
        car gone, its draw would count as other load and starve the remaining sessions.
        """
        if self.energy is not None:
            self.entry.async_create_background_task(
                self.hass, self.energy.async_request_refresh(), "cariflex energy cycle"
            )

    @callback
    def _session_ended(self, charger: Charger, session: Session) -> None:
        record = {"charger_id": charger.charger_id, **session.as_dict(), "energy_wh": session.energy_wh}
        self.history.append(record)
        del self.history[:-HISTORY_LIMIT]
        self.hass.bus.async_fire(EVENT_SESSION_ENDED, {"entry_id": self.entry.entry_id, **record})
        self.async_save()

    @callback
    def _data_transfer(self, charger: Charger, vendor_id: str, message_id: str | None, data: str | None) -> str:
        self.hass.bus.async_fire(
            EVENT_DATA_TRANSFER,
            {"charger_id": charger.charger_id, "vendor_id": vendor_id, "message_id": message_id, "data": data},
        )
        return "UnknownVendorId"

    # ----------------------------------------------------------- chargers
    def _register_hub(self) -> None:
        registry = dr.async_get(self.hass)
        hub = registry.async_get_or_create(
            config_entry_id=self.entry.entry_id,
            identifiers={(DOMAIN, self.entry.entry_id)},
            manufacturer=MANUFACTURER,
            model="OCPP central system",
            name=entry_setting(self.entry, CONF_SITE_NAME, self.entry.title),
        )
        self.hub_device_id = hub.id

    def _child_device(self, subentry_id: str, identifier: str, **info: Any) -> dr.DeviceEntry:
        """A device of a sub-entry, linked to the site device (``via_device_id``, both versions)."""
        registry = dr.async_get(self.hass)
        device = registry.async_get_or_create(
            config_entry_id=self.entry.entry_id,
            config_subentry_id=subentry_id,
            identifiers={(DOMAIN, identifier)},
            **info,
        )
        if self.hub_device_id and device.via_device_id != self.hub_device_id:
            device = registry.async_update_device(device.id, via_device_id=self.hub_device_id) or device
        return device

    @callback
    def _unknown_charger(self, charger_id: str, auto_accept: bool) -> None:
        if auto_accept:
            self.hass.config_entries.async_add_subentry(
                self.entry,
                ConfigSubentry(
                    data={CONF_CHARGER_ID: charger_id},  # type: ignore[arg-type]
                    subentry_type=SUBENTRY_CHARGER,
                    title=charger_id,
                    unique_id=charger_id,
                ),
            )
            return
        discovery_flow.async_create_flow(
            self.hass,
            DOMAIN,
            context={"source": SOURCE_INTEGRATION_DISCOVERY},
            data={"entry_id": self.entry.entry_id, CONF_CHARGER_ID: charger_id},
        )

    def on_new_charger(self, callback_fn: ChargerCallback) -> None:
        """Call ``callback_fn`` for every charger coordinator, now and when one appears."""
        self._charger_callbacks.append(callback_fn)
        for coordinator in list(self.coordinators.values()):
            callback_fn(coordinator)

    @callback
    def async_sync_chargers(self) -> None:
        """Bring the known chargers and their coordinators in line with the sub-entries."""
        configs: list[ChargerConfig] = []
        wanted: dict[str, ConfigSubentry] = {}
        for subentry in self.entry.subentries.values():
            if subentry.subentry_type != SUBENTRY_CHARGER:
                continue
            charger_id = subentry.data[CONF_CHARGER_ID]
            wanted[charger_id] = subentry
            configs.append(ChargerConfig(charger_id, subentry.title, subentry.data.get(CONF_PASSWORD_HASH)))
        self.backend.set_known(configs)
        for charger_id in list(self.coordinators):
            if charger_id not in wanted:
                self.coordinators.pop(charger_id).shutdown()
                self.backend.chargers.pop(charger_id, None)
                if self.central is not None and charger_id in self.central.connections:
                    websocket = self.central.connections[charger_id][0]
                    self.spawn(websocket.close(code=1000, message=b"removed"), f"close {charger_id}")
        for charger_id, subentry in wanted.items():
            coordinator = self.coordinators.get(charger_id)
            if coordinator is not None:
                coordinator.settings = subentry.data
                continue
            self._create_charger(charger_id, subentry)

    def _create_charger(self, charger_id: str, subentry: ConfigSubentry) -> None:
        charger = self.backend.charger(charger_id)
        self._child_device(
            subentry.subentry_id,
            charger_id,
            name=subentry.title or charger_id,
            manufacturer=charger.info.vendor,
            model=charger.info.model,
            serial_number=charger.info.serial,
            sw_version=charger.info.firmware,
        )
        coordinator = ChargerCoordinator(
            self.hass,
            self.entry,
            charger,
            subentry.subentry_id,
            subentry.data,
        )
        charger.on_session(started=self._session_started)
        coordinator.async_discover_connectors()
        self.coordinators[charger_id] = coordinator
        for callback_fn in list(self._charger_callbacks):
            callback_fn(coordinator)
        if charger.connected and charger.boot_status != "Accepted" and self.central is not None:
            adapter = self.central.adapter(charger_id)
            if adapter is not None:
                # A charger held at Pending was just confirmed: ask it to boot again now.
                self.spawn(_trigger_boot(adapter), f"{charger_id} trigger boot")

    # -------------------------------------------------------------- meters
    def on_new_meter(self, callback_fn: Callable[[MeterCoordinator], None]) -> None:
        """Call ``callback_fn`` for every Modbus device, now and when one is added."""
        self._meter_callbacks.append(callback_fn)
        for meter in list(self.meters.values()):
            callback_fn(meter)

    def on_new_board(self, callback_fn: Callable[[str, str], None]) -> None:
        """Call ``callback_fn(board_id, title)`` for every sub-board, now and when one is added."""
        self._board_callbacks.append(callback_fn)
        for board_id in sorted(self._board_ids):
            callback_fn(board_id, self.entry.subentries[board_id].title)

    @callback
    def async_sync_boards(self) -> None:
        """A device per sub-board (its sensors are added by the platform callbacks)."""
        for board_id, subentry in self.entry.subentries.items():
            if subentry.subentry_type != SUBENTRY_BOARD or board_id in self._board_ids:
                continue
            self._child_device(
                board_id, f"board_{board_id}", name=subentry.title, manufacturer=MANUFACTURER, model="Sub-board"
            )
            self._board_ids.add(board_id)
            for callback_fn in list(self._board_callbacks):
                callback_fn(board_id, subentry.title)
        self._board_ids &= set(self.entry.subentries)

    def boards(self) -> dict[str, Mapping[str, Any]]:
        """The sub-boards of the site by sub-entry id (with their name)."""
        return {
            sid: {**sub.data, "name": sub.title}
            for sid, sub in self.entry.subentries.items()
            if sub.subentry_type == SUBENTRY_BOARD
        }

    def grid_meter(self) -> MeterCoordinator | None:
        """The Modbus device measuring the grid connection, if any."""
        return self.meter_with_role(ROLE_GRID)

    def meter_with_role(self, role: str) -> MeterCoordinator | None:
        """The first Modbus device with ``role`` (grid, pv, battery), if any."""
        return next((meter for meter in self.meters.values() if meter.role == role), None)

    async def async_sync_meters(self) -> None:
        """Bring the Modbus devices in line with the meter sub-entries (one sync at a time)."""
        async with self._meter_lock:
            await self._async_sync_meters()

    async def _async_sync_meters(self) -> None:
        wanted = {sid: sub for sid, sub in self.entry.subentries.items() if sub.subentry_type == SUBENTRY_METER}
        for subentry_id in [sid for sid in self.meters if sid not in wanted]:
            await self.meters.pop(subentry_id).async_close()
        for subentry_id, subentry in wanted.items():
            if subentry_id in self.meters:
                continue
            profile = await async_load_profile(self.hass, subentry.data[CONF_PROFILE])
            meter = MeterCoordinator(
                self.hass,
                self.entry,
                subentry_id=subentry_id,
                title=subentry.title,
                settings=subentry.data,
                profile=profile,
                on_reading=self._meter_read,
            )
            await meter.async_refresh()
            if self._stopping or subentry_id not in self.entry.subentries:  # unloaded or removed meanwhile
                await meter.async_close()
                continue
            self._child_device(
                subentry_id,
                meter.device_key,
                name=subentry.title,
                manufacturer=profile.manufacturer or None,
                model=profile.name,
            )
            self.meters[subentry_id] = meter
            for callback_fn in list(self._meter_callbacks):
                callback_fn(meter)

    def _meter_read(self, meter: MeterCoordinator, reading: Reading) -> None:
        """A new reading: a jump at the grid meter starts an energy cycle at once.

        Not through ``entry.runtime_data``: the first readings come before setup sets it.
        """
        if meter.role == ROLE_GRID and self.energy is not None:
            self.energy.meter_moved(reading.power_w)

    def charger_for_device(self, device_id: str) -> Charger | None:
        """The charger behind a device registry id."""
        device = dr.async_get(self.hass).async_get(device_id)
        if device is None:
            return None
        for domain, identifier in device.identifiers:
            if domain == DOMAIN and identifier in self.coordinators:
                return self.coordinators[identifier].charger
        return None


async def _trigger_boot(adapter: Any) -> None:
    try:
        await adapter.call("TriggerMessage", {"requestedMessage": "BootNotification"})
    except Exception as err:  # noqa: BLE001 - the charger retries on its own anyway
        _LOGGER.debug("TriggerMessage BootNotification failed: %s", err)
