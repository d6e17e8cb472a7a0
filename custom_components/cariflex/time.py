"""Time: when the car on a connector leaves (the planner's deadline)."""

from __future__ import annotations

from datetime import time

from homeassistant.components.time import TimeEntity, TimeEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .coordinator import ChargerCoordinator
from .entity import ConnectorEnergyEntity, async_add_charger_entities
from .runtime import CariflexConfigEntry

PARALLEL_UPDATES = 1

DEPARTURE = TimeEntityDescription(
    key="departure",
    translation_key="departure",
    entity_registry_enabled_default=False,  # the planner's inputs: enable them to plan sessions
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CariflexConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """A departure time per connector."""
    energy = entry.runtime_data.energy
    assert energy is not None

    def connector_entities(coordinator: ChargerCoordinator, connector_id: int) -> list[TimeEntity]:
        return [DepartureTime(energy, coordinator, connector_id, DEPARTURE)]

    async_add_charger_entities(entry, async_add_entities, lambda _coordinator: [], connector_entities)


class DepartureTime(ConnectorEnergyEntity, TimeEntity):
    """The time of day the car leaves; with an energy to add, the planner plans the session."""

    @property
    def native_value(self) -> time | None:
        """The departure (unknown until set)."""
        value = self.coordinator.runtime.departures.get(self._session_id)
        return None if value is None else dt_util.parse_time(value)

    async def async_set_value(self, value: time) -> None:
        """Set the departure; the plan follows."""
        await self.coordinator.async_set_departure(self._session_id, value.isoformat(timespec="seconds"))
