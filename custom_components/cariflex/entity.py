"""Base entities: one device per charger, entities per charger or per connector."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .cloud import CloudLink
from .const import DOMAIN
from .coordinator import ChargerCoordinator
from .energy import EnergyCoordinator, session_id
from .ocpp.model import Charger, Connector
from .runtime import CariflexConfigEntry


class CariflexEntity(CoordinatorEntity[ChargerCoordinator]):
    """An entity of one charger (``connector_id`` None) or of one of its connectors."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: ChargerCoordinator,
        description: EntityDescription,
        connector_id: int | None = None,
    ) -> None:
        super().__init__(coordinator)
        self.entity_description = description
        self.connector_id = connector_id
        charger_id = coordinator.charger_id
        if connector_id is None:
            self._attr_unique_id = f"{charger_id}_{description.key}"
        else:
            self._attr_unique_id = f"{charger_id}_{connector_id}_{description.key}"
            self._attr_translation_placeholders = {"connector": str(connector_id)}
        self._attr_translation_key = translation_key_for(description, connector_id)
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, charger_id)})

    @property
    def charger(self) -> Charger:
        """The charger model."""
        return self.coordinator.charger

    @property
    def connector(self) -> Connector:
        """This entity's connector (connector 0 for charger-level entities)."""
        return self.charger.connector(self.connector_id or 0)

    @property
    def available(self) -> bool:
        """Live values are unavailable while the charger is disconnected."""
        return self.charger.connected


def async_add_charger_entities(
    entry: CariflexConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
    charger_entities: Callable[[ChargerCoordinator], Sequence[Entity]],
    connector_entities: Callable[[ChargerCoordinator, int], Sequence[Entity]] | None = None,
) -> None:
    """Add a platform's entities for every charger and connector, now and as they appear."""

    @callback
    def add_charger(coordinator: ChargerCoordinator) -> None:
        entities = list(charger_entities(coordinator))
        if entities:
            async_add_entities(entities, config_subentry_id=coordinator.subentry_id)
        if connector_entities is None:
            return

        @callback
        def add_connector(connector_id: int) -> None:
            async_add_entities(
                list(connector_entities(coordinator, connector_id)),
                config_subentry_id=coordinator.subentry_id,
            )

        coordinator.on_new_connector(add_connector)

    entry.runtime_data.on_new_charger(add_charger)


def translation_key_for(description: EntityDescription, connector_id: int | None) -> str:
    """``<key>`` for the charger and its connector 1, ``<key>_n`` (named with the number) beyond."""
    key = description.translation_key or description.key
    if connector_id is None or connector_id == 1:
        return key
    return f"{key}_n"


class SiteEntity(CoordinatorEntity[EnergyCoordinator]):
    """An entity of the site device, fed by the energy manager."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: EnergyCoordinator, description: EntityDescription) -> None:
        super().__init__(coordinator)
        self.entity_description = description
        entry_id = coordinator.runtime.entry.entry_id
        self._attr_unique_id = f"{entry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, entry_id)})


class ConnectorEnergyEntity(CoordinatorEntity[EnergyCoordinator]):
    """A connector's entity that shows or sets something of the energy manager (its charger's device)."""

    _attr_has_entity_name = True

    def __init__(
        self, energy: EnergyCoordinator, charger: ChargerCoordinator, connector_id: int, description: EntityDescription
    ) -> None:
        super().__init__(energy)
        self.entity_description = description
        self._session_id = session_id(charger.charger_id, connector_id)
        self._attr_unique_id = f"{charger.charger_id}_{connector_id}_{description.key}"
        self._attr_translation_key = translation_key_for(description, connector_id)
        self._attr_translation_placeholders = {"connector": str(connector_id)}
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, charger.charger_id)})


class CloudEntity(Entity):
    """An entity of the site device showing its link to the cloud connector (pushed by the link)."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, cloud: CloudLink, description: EntityDescription) -> None:
        self.cloud = cloud
        self.entity_description = description
        entry_id = cloud.runtime.entry.entry_id
        self._attr_unique_id = f"{entry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, entry_id)})

    async def async_added_to_hass(self) -> None:
        """Follow the link's state and queue."""
        self.async_on_remove(self.cloud.add_listener(self.async_write_ha_state))
