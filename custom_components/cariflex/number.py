"""Numbers: the current limit of a connector's session (Tx/TxDefault profile); what the car needs (planner)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.number import NumberDeviceClass, NumberEntity, NumberEntityDescription, NumberMode
from homeassistant.const import PERCENTAGE, UnitOfElectricCurrent, UnitOfEnergy
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import ChargerCoordinator
from .energy import EnergyCoordinator
from .entity import CariflexEntity, ConnectorEnergyEntity, async_add_charger_entities
from .helpers import async_command
from .runtime import CariflexConfigEntry, CariflexRuntime

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


@dataclass(frozen=True, kw_only=True)
class PlanInputDescription(NumberEntityDescription):
    """A planner input kept per connector (0: not set)."""

    values_fn: Callable[[CariflexRuntime], dict[str, float]]
    set_fn: Callable[[EnergyCoordinator, str, float], Awaitable[None]]


PLAN_INPUTS: tuple[PlanInputDescription, ...] = (
    PlanInputDescription(
        key="energy_need",
        translation_key="energy_need",
        device_class=NumberDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        native_min_value=0,
        native_max_value=200,
        native_step=0.5,
        mode=NumberMode.BOX,
        entity_registry_enabled_default=False,  # the planner's inputs: enable them to plan sessions
        values_fn=lambda runtime: runtime.energy_needs,
        set_fn=lambda energy, key, value: energy.async_set_energy_need(key, value),
    ),
    PlanInputDescription(
        key="soc_target",
        translation_key="soc_target",
        native_unit_of_measurement=PERCENTAGE,
        native_min_value=0,
        native_max_value=100,
        native_step=5,
        mode=NumberMode.SLIDER,
        entity_registry_enabled_default=False,
        values_fn=lambda runtime: runtime.soc_targets,
        set_fn=lambda energy, key, value: energy.async_set_soc_target(key, value),
    ),
    PlanInputDescription(
        key="battery_capacity",
        translation_key="battery_capacity",
        device_class=NumberDeviceClass.ENERGY_STORAGE,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        native_min_value=0,
        native_max_value=250,
        native_step=0.5,
        mode=NumberMode.BOX,
        entity_registry_enabled_default=False,
        values_fn=lambda runtime: runtime.battery_capacities,
        set_fn=lambda energy, key, value: energy.async_set_battery_capacity(key, value),
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CariflexConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add a current limit and the planner's inputs (energy, SoC target, battery) per connector."""
    energy = entry.runtime_data.energy
    assert energy is not None

    def connector_entities(coordinator: ChargerCoordinator, connector_id: int) -> list[NumberEntity]:
        return [
            CurrentLimitNumber(coordinator, CURRENT_LIMIT, connector_id),
            *(PlanInputNumber(energy, coordinator, connector_id, description) for description in PLAN_INPUTS),
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


class PlanInputNumber(ConnectorEnergyEntity, NumberEntity):
    """What the planner needs of a car: the energy to add, or a SoC target and the battery's capacity.

    With a departure time the planner plans the session: from the SoC target when the car
    reports its SoC, else from the energy to add.
    """

    entity_description: PlanInputDescription

    @property
    def native_value(self) -> float:
        """The value set (0: none)."""
        return self.entity_description.values_fn(self.coordinator.runtime).get(self._session_id, 0.0)

    async def async_set_native_value(self, value: float) -> None:
        """Keep the value; the plan follows."""
        await self.entity_description.set_fn(self.coordinator, self._session_id, value)
