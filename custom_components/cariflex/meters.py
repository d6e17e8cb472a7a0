"""Modbus devices of the site (meters, PV inverters, batteries) in Home Assistant.

Each meter sub-entry is a device polled by its own coordinator through the pure Modbus
layer (``modbus/``): one read per cycle fetches every quantity its profile maps. A meter
with the role "grid" feeds the energy manager when no Home Assistant sensor is chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
import logging
from typing import TYPE_CHECKING, Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed

from .const import (
    CONF_BAUDRATE,
    CONF_BYTESIZE,
    CONF_HOST,
    CONF_PARITY,
    CONF_PORT,
    CONF_PROFILE,
    CONF_ROLE,
    CONF_RTU_FRAMING,
    CONF_SERIAL_PORT,
    CONF_STOPBITS,
    CONF_UNIT_ID,
    DOMAIN,
    METER_POLL_S,
)
from .modbus import TCP, ModbusDevice, ModbusError, Profile, Reading, Serial, load_profile

if TYPE_CHECKING:
    from .runtime import CariflexConfigEntry

_LOGGER = logging.getLogger(__name__)


async def async_load_profile(hass: HomeAssistant, profile_id: str) -> Profile:
    """A shipped profile (reading its JSON file off the event loop)."""
    return await hass.async_add_executor_job(load_profile, profile_id)


def make_device(profile: Profile, settings: Mapping[str, Any]) -> ModbusDevice:
    """The Modbus reader of a meter sub-entry."""
    transport: TCP | Serial
    if settings.get(CONF_SERIAL_PORT):
        transport = Serial(
            str(settings[CONF_SERIAL_PORT]),
            baudrate=int(settings.get(CONF_BAUDRATE, 9600)),
            parity=settings.get(CONF_PARITY, "N"),
            stopbits=int(settings.get(CONF_STOPBITS, 1)),
            bytesize=int(settings.get(CONF_BYTESIZE, 8)),
        )
    else:
        transport = TCP(
            str(settings[CONF_HOST]), int(settings[CONF_PORT]), rtu_framing=bool(settings.get(CONF_RTU_FRAMING))
        )
    return ModbusDevice(profile, transport, unit_id=int(settings[CONF_UNIT_ID]))


class MeterCoordinator(DataUpdateCoordinator[Reading]):
    """Polls one Modbus device."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: CariflexConfigEntry,
        *,
        subentry_id: str,
        title: str,
        settings: Mapping[str, Any],
        profile: Profile,
        on_reading: Callable[[MeterCoordinator, Reading], None] | None = None,
    ) -> None:
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} meter {title}",
            update_interval=timedelta(seconds=METER_POLL_S),
        )
        self.subentry_id = subentry_id
        self.title = title
        self.settings = settings
        self.profile = profile
        self.device = make_device(profile, settings)
        self.entry = entry
        self._on_reading = on_reading

    @property
    def role(self) -> str:
        """grid, pv, battery, genset or other."""
        return str(self.settings.get(CONF_ROLE, "other"))

    @property
    def device_key(self) -> str:
        """Identifier of the meter's device."""
        return f"meter_{self.subentry_id}"

    @property
    def profile_id(self) -> str:
        """The register profile in use."""
        return str(self.settings[CONF_PROFILE])

    async def _async_update_data(self) -> Reading:
        try:
            reading = await self.device.read()
        except ModbusError as err:
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="meter_read_failed",
                translation_placeholders={"meter": self.title, "error": str(err)},
            ) from err
        if self._on_reading is not None:
            self._on_reading(self, reading)
        return reading

    async def async_close(self) -> None:
        """Close the Modbus connection."""
        await self.async_shutdown()
        await self.device.close()
