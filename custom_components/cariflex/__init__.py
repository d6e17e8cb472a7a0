"""Cariflex: Home Assistant as the site's OCPP central system and energy manager."""

from __future__ import annotations

import logging

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .const import CONF_WS_PORT, CONF_WSS_PORT, DOMAIN
from .issues import async_delete_entry_issues
from .runtime import CariflexConfigEntry, CariflexRuntime, entry_setting
from .services import async_setup_services

_LOGGER = logging.getLogger(__name__)

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.TIME,
]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions once for every site."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: CariflexConfigEntry) -> bool:
    """Start the site's central system."""
    runtime = CariflexRuntime(hass, entry)
    try:
        await runtime.async_start()
    except OSError as err:
        await runtime.async_stop()
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="port_unavailable",
            translation_placeholders={
                "ws_port": str(entry_setting(entry, CONF_WS_PORT, "")),
                "wss_port": str(entry_setting(entry, CONF_WSS_PORT, "")),
                "error": str(err),
            },
        ) from err
    entry.runtime_data = runtime
    entry.async_on_unload(entry.add_update_listener(_async_update_listener))
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: CariflexConfigEntry) -> bool:
    """Stop the central system and unload the platforms."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if unloaded:
        await entry.runtime_data.async_stop()
    return unloaded


async def async_remove_entry(hass: HomeAssistant, entry: CariflexConfigEntry) -> None:
    """The site is deleted: its repair issues go with it."""
    async_delete_entry_issues(hass, entry.entry_id)


async def _async_update_listener(hass: HomeAssistant, entry: CariflexConfigEntry) -> None:
    """Reload for site settings; add or remove chargers in place for sub-entry changes."""
    runtime = entry.runtime_data
    if runtime.signature(entry) != runtime.settings_signature:
        await hass.config_entries.async_reload(entry.entry_id)
        return
    runtime.async_sync_chargers()
    runtime.async_sync_boards()
    await runtime.async_sync_meters()


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: CariflexConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Delete a charger that is not connected: its device and its sub-entry go together."""
    for domain, identifier in device.identifiers:
        if domain != DOMAIN:
            continue
        if identifier == entry.entry_id:
            return False  # the site itself: delete the entry instead
        coordinator = entry.runtime_data.coordinators.get(identifier)
        if coordinator is not None and coordinator.charger.connected:
            return False
        for subentry in list(entry.subentries.values()):
            if subentry.unique_id == identifier:
                hass.config_entries.async_remove_subentry(entry, subentry.subentry_id)
    return True
