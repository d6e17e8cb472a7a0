"""Switch: the charger's availability (ChangeAvailability on connector 0)."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import ChargerCoordinator
from .entity import CariflexEntity, async_add_charger_entities
from .helpers import async_command
from .ocpp.model import Availability, ConnectorStatus
from .runtime import CariflexConfigEntry

PARALLEL_UPDATES = 1

AVAILABILITY = SwitchEntityDescription(
    key="availability",
    translation_key="availability",
    entity_category=EntityCategory.CONFIG,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CariflexConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the availability switch of every charger."""

    def charger_entities(coordinator: ChargerCoordinator) -> list[SwitchEntity]:
        return [AvailabilitySwitch(coordinator, AVAILABILITY)]

    async_add_charger_entities(entry, async_add_entities, charger_entities)


class AvailabilitySwitch(CariflexEntity, SwitchEntity):
    """On when the charger is operative."""

    @property
    def is_on(self) -> bool:
        """Operative unless the station (or every connector) reports Unavailable."""
        station = self.charger.connectors.get(0)
        if station is not None and station.status is not ConnectorStatus.UNKNOWN:
            return station.status is not ConnectorStatus.UNAVAILABLE
        outlets = self.charger.outlets
        return not outlets or any(c.status is not ConnectorStatus.UNAVAILABLE for c in outlets)

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Make the charger operative."""
        await self._set(Availability.OPERATIVE)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Make the charger inoperative (a running session finishes first)."""
        await self._set(Availability.INOPERATIVE)

    async def _set(self, availability: Availability) -> None:
        await async_command(
            self.charger,
            "change_availability",
            lambda link: link.set_availability(0, availability),
            accepted=("Accepted", "Scheduled"),
        )
