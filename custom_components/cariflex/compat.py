"""Differences between Home Assistant 2025.4 and 2026.10, each tested by feature.

Keep every version difference here (DESIGN.md): callers never compare version strings.
"""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr


def async_get_device(hass: HomeAssistant, identifier: tuple[str, str], config_entry_id: str) -> dr.DeviceEntry | None:
    """The device with ``identifier`` owned by the config entry.

    2026.10 makes identifiers unique per config entry and deprecates the global
    ``async_get_device`` lookup for ``async_get_device_by_identifier``.
    """
    registry = dr.async_get(hass)
    by_identifier = getattr(registry, "async_get_device_by_identifier", None)
    if by_identifier is not None:
        device: dr.DeviceEntry | None = by_identifier(identifier, config_entry_id)
        return device
    device = registry.async_get_device(identifiers={identifier})
    if device is not None and config_entry_id not in device_config_entry_ids(device):
        return None
    return device


def device_config_entry_ids(device: dr.DeviceEntry) -> set[str]:
    """The config entries a device belongs to.

    2026.10 gives a device a single ``config_entry_id`` and deprecates ``config_entries``.
    """
    single: str | None = getattr(device, "config_entry_id", None)
    if single is not None:
        return {single}
    return set(device.config_entries)
