"""Binary sensor: is the charger connected to the central system."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorEntity, BinarySensorEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .compat import BinarySensorDeviceClass
from .coordinator import ChargerCoordinator
from .entity import CariflexEntity, async_add_charger_entities
from .runtime import CariflexConfigEntry

PARALLEL_UPDATES = 0

CONNECTED = BinarySensorEntityDescription(
    key="connected",
    translation_key="connected",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CariflexConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the connectivity sensor of every charger."""

    def charger_entities(coordinator: ChargerCoordinator) -> list[BinarySensorEntity]:
        return [ChargerConnectedSensor(coordinator, CONNECTED)]

    async_add_charger_entities(entry, async_add_entities, charger_entities)


class ChargerConnectedSensor(CariflexEntity, BinarySensorEntity):
    """On while the charger's websocket is open."""

    @property
    def available(self) -> bool:
        """Always available: it reports the connection itself."""
        return True

    @property
    def is_on(self) -> bool:
        """Whether the charger is connected."""
        return self.charger.connected
