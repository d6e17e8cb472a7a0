"""Differences between Home Assistant 2025.4 and 2026.10, each tested by feature.

Keep every version difference here (DESIGN.md): callers never compare version strings.
"""

from __future__ import annotations

from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

# Schemas: Home Assistant 2026.10 validates with probatio (API-compatible with voluptuous,
# which 2025.4 uses). Flows, actions and config validation take the library it runs on.
try:
    import probatio as vol
except ImportError:  # Home Assistant 2025.4
    import voluptuous as vol  # type: ignore[no-redef]

# Device classes: 2026.10 keeps them in the platforms' const modules (re-exported implicitly).
try:
    from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass  # type: ignore[import-not-found,attr-defined,unused-ignore]
except ImportError:  # Home Assistant 2025.4
    from homeassistant.components.binary_sensor import BinarySensorDeviceClass  # type: ignore[attr-defined,no-redef,unused-ignore]
try:
    from homeassistant.components.button.const import ButtonDeviceClass  # type: ignore[attr-defined,unused-ignore]
except ImportError:  # Home Assistant 2025.4
    from homeassistant.components.button import ButtonDeviceClass  # type: ignore[attr-defined,no-redef,unused-ignore]

__all__ = ["BinarySensorDeviceClass", "ButtonDeviceClass", "async_get_device", "device_config_entry_ids", "vol"]


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


def device_config_entry_ids(device: Any) -> set[str]:
    """The config entries a device (2026.10: or a child device) belongs to.

    2026.10 gives a device a single ``config_entry_id`` and deprecates ``config_entries``.
    """
    single: str | None = getattr(device, "config_entry_id", None)
    if single is not None:
        return {single}
    return set(device.config_entries)
