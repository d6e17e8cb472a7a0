"""Numbers: the current limit of a connector's session (Tx/TxDefault profile); the energy the car needs."""

from __future__ import annotations

from homeassistant.components.number import NumberDeviceClass, NumberEntity, NumberEntityDescription, NumberMode
from homeassistant.const import UnitOfElectricCurrent, UnitOfEnergy
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import ChargerCoordinator
from .entity import CariflexEntity, ConnectorEnergyEntity, async_add_charger_entities
from .helpers import async_command
from .runtime import CariflexConfigEntry

PARALLEL_UPDATES = 1

CURRENT_LIMIT = NumberEntityDescription(
    key="current_limit",
    translation_key="current_limit",
    device_class=NumberDeviceClass.CURRENT,
    native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
    native_min_value=0,
    native_step=1,
    mode=NumberMode.SLIDER,
)

ENERGY_NEED = NumberEntityDescription(
    key="energy_need",
    translation_key="energy_need",
    device_class=NumberDeviceClass.ENERGY,
    native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
    native_min_value=0,
    native_max_value=200,
    native_step=0.5,
    mode=NumberMode.BOX,
    entity_registry_enabled_default=False,  # the planner's inputs: enable them to plan sessions
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CariflexConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a current limit and an energy need per connector."""
    energy = entry.runtime_data.energy
    assert energy is not None

    def connector_entities(coordinator: ChargerCoordinator, connector_id: int) -> list[NumberEntity]:
        return [
            CurrentLimitNumber(coordinator, CURRENT_LIMIT, connector_id),
            EnergyNeedNumber(energy, coordinator, connector_id, ENERGY_NEED),
        ]

    async_add_charger_entities(entry, async_add_entities, lambda _c: [], connector_entities)


class CurrentLimitNumber(CariflexEntity, NumberEntity):
    """0 A pauses the session; the maximum is the charger's configured maximum current."""

    @property
    def native_max_value(self) -> float:
        """The charger's maximum current (charger settings)."""
        return self.coordinator.max_current

    @property
    def native_value(self) -> float | None:
        """The limit in force (the maximum when none was set)."""
        limit = self.connector.current_limit_a
        return self.coordinator.max_current if limit is None else limit

    async def async_set_native_value(self, value: float) -> None:
        """Send a TxProfile (running session) or TxDefaultProfile."""
        connector_id = self.connector_id or 1
        await async_command(
            self.charger,
            "set_current_limit",
            lambda link: link.set_current_limit(connector_id, value),
        )


class EnergyNeedNumber(ConnectorEnergyEntity, NumberEntity):
    """The energy to add before the car leaves (0: not planned); with a departure time the planner plans it."""

    @property
    def native_value(self) -> float:
        """The energy need (kWh)."""
        return self.coordinator.runtime.energy_needs.get(self._session_id, 0.0)

    async def async_set_native_value(self, value: float) -> None:
        """Set the need; the plan follows."""
        await self.coordinator.async_set_energy_need(self._session_id, value)
