"""Binary sensors: is the charger connected; is the ZNI grid signal constraining the site."""

from __future__ import annotations

from homeassistant.components.binary_sensor import BinarySensorEntity, BinarySensorEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .compat import BinarySensorDeviceClass
from .coordinator import ChargerCoordinator
from .entity import CariflexEntity, CloudEntity, SiteEntity, async_add_charger_entities
from .runtime import CariflexConfigEntry

PARALLEL_UPDATES = 0

CONNECTED = BinarySensorEntityDescription(
    key="connected",
    translation_key="connected",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)

ZNI_CONSTRAINT = BinarySensorEntityDescription(key="zni_constraint", translation_key="zni_constraint")
CLOUD_CONNECTION = BinarySensorEntityDescription(
    key="cloud_connection",
    translation_key="cloud_connection",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CariflexConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the connectivity sensor of every charger, and the ZNI constraint of a ZNI site."""
    energy = entry.runtime_data.energy
    assert energy is not None
    if energy.zni.enabled:
        async_add_entities([ZniConstraintSensor(energy, ZNI_CONSTRAINT)])
    if (cloud := entry.runtime_data.cloud) is not None:
        async_add_entities([CloudConnectionSensor(cloud, CLOUD_CONNECTION)])

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


class ZniConstraintSensor(SiteEntity, BinarySensorEntity):
    """On while the EDF-SEI signal (or its safe default) is 0 and the chargers are capped."""

    @property
    def is_on(self) -> bool | None:
        """Whether the signal-0 cap applies (unknown before the first cycle)."""
        strategy = self.coordinator.data.strategy
        return None if strategy is None else strategy.zni_cap_active

    @property
    def extra_state_attributes(self) -> dict[str, int | str | None]:
        """The signal received, the one applied and where it came from (signal, safe default...)."""
        strategy = self.coordinator.data.strategy
        if strategy is None:
            return {}
        return {
            "signal": strategy.zni.signal,
            "applied": strategy.zni.applied,
            "source": str(strategy.zni.source),
        }


class CloudConnectionSensor(CloudEntity, BinarySensorEntity):
    """On while the site's uplink to the cloud connector is open and welcomed."""

    @property
    def is_on(self) -> bool:
        """Whether the cloud connector has the site online."""
        return self.cloud.client is not None and self.cloud.client.connected
