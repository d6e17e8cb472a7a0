"""Push coordinators: one per charger, fed by the charger model once per message."""

from __future__ import annotations

from collections.abc import Callable, Mapping
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .compat import async_get_device
from .const import CONF_MAX_CURRENT, DEFAULT_MAX_CURRENT, DOMAIN
from .ocpp.model import Charger

if TYPE_CHECKING:
    from .runtime import CariflexRuntime

_LOGGER = logging.getLogger(__name__)

ConnectorCallback = Callable[[int], None]


class ChargerCoordinator(DataUpdateCoordinator[Charger]):
    """Carries one charger's model to its entities; no polling."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry[CariflexRuntime],
        charger: Charger,
        subentry_id: str,
        settings: Mapping[str, Any],
    ) -> None:
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {charger.charger_id}",
            update_interval=None,
        )
        self.charger = charger
        self.subentry_id = subentry_id
        self.settings: Mapping[str, Any] = settings
        self.data = charger
        self._connectors: set[int] = set()
        self._connector_callbacks: list[ConnectorCallback] = []
        self._was_connected = charger.connected
        self._info = dataclasses.replace(charger.info)
        self._unsub = charger.add_listener(self._charger_changed)

    @property
    def max_current(self) -> float:
        """The highest current this charger may be given (its sub-entry setting)."""
        return float(self.settings.get(CONF_MAX_CURRENT, DEFAULT_MAX_CURRENT))

    @property
    def charger_id(self) -> str:
        """The OCPP charge point id."""
        return self.charger.charger_id

    def shutdown(self) -> None:
        """Stop listening to the model."""
        self._unsub()
        self._connector_callbacks.clear()

    def on_new_connector(self, callback_fn: ConnectorCallback) -> None:
        """Call ``callback_fn`` for every connector, now and when one appears."""
        self._connector_callbacks.append(callback_fn)
        for connector_id in sorted(self._connectors):
            callback_fn(connector_id)

    @callback
    def async_discover_connectors(self) -> None:
        """Announce connectors not seen before (id >= 1)."""
        for connector_id in sorted(self.charger.connectors):
            if connector_id > 0 and connector_id not in self._connectors:
                self._connectors.add(connector_id)
                for callback_fn in list(self._connector_callbacks):
                    callback_fn(connector_id)

    @callback
    def _charger_changed(self, charger: Charger) -> None:
        if charger.connected != self._was_connected:
            self._was_connected = charger.connected
            if not charger.connected:
                _LOGGER.info(
                    "Charger %s disconnected: its entities are unavailable until it reconnects", charger.charger_id
                )
            else:
                _LOGGER.info("Charger %s connected", charger.charger_id)
        if charger.info != self._info:
            self._info = dataclasses.replace(charger.info)
            self._update_device()
        self.async_discover_connectors()
        self.async_set_updated_data(charger)

    def _update_device(self) -> None:
        assert self.config_entry is not None
        device = async_get_device(self.hass, (DOMAIN, self.charger_id), self.config_entry.entry_id)
        if device is None:
            return
        info = self.charger.info
        dr.async_get(self.hass).async_update_device(
            device.id,
            manufacturer=info.vendor,
            model=info.model,
            serial_number=info.serial,
            sw_version=info.firmware,
        )
