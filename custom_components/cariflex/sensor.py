"""Sensors: status, power, currents, voltage, energy and session values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfPower,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from .coordinator import ChargerCoordinator
from .entity import CariflexEntity, async_add_charger_entities
from .ocpp.model import Charger, Connector, ConnectorStatus
from .runtime import CariflexConfigEntry

# Push-only: entities never poll, so no limit on parallel updates.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class ConnectorSensorDescription(SensorEntityDescription):
    """A value read from a connector."""

    value_fn: Callable[[Connector, datetime], StateType | datetime]
    always_available: bool = False


@dataclass(frozen=True, kw_only=True)
class ChargerSensorDescription(SensorEntityDescription):
    """A value read from the charger."""

    value_fn: Callable[[Charger], StateType | datetime]
    always_available: bool = False


def _phase(phase: str) -> ConnectorSensorDescription:
    return ConnectorSensorDescription(
        key=f"current_{phase.lower()}",
        translation_key=f"current_{phase.lower()}",
        device_class=SensorDeviceClass.CURRENT,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        suggested_display_precision=1,
        value_fn=lambda c, _now: c.readings.current_a.get(phase),
    )


CONNECTOR_SENSORS: tuple[ConnectorSensorDescription, ...] = (
    ConnectorSensorDescription(
        key="status",
        translation_key="status",
        device_class=SensorDeviceClass.ENUM,
        options=[status.value for status in ConnectorStatus],
        value_fn=lambda c, _now: c.status.value,
    ),
    ConnectorSensorDescription(
        key="error_code",
        translation_key="error_code",
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda c, _now: c.error_code,
    ),
    ConnectorSensorDescription(
        key="power",
        translation_key="power",
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_unit_of_measurement=UnitOfPower.KILO_WATT,
        suggested_display_precision=2,
        value_fn=lambda c, _now: c.readings.power_w,
    ),
    _phase("L1"),
    _phase("L2"),
    _phase("L3"),
    ConnectorSensorDescription(
        key="voltage",
        translation_key="voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        suggested_display_precision=0,
        entity_registry_enabled_default=False,
        value_fn=lambda c, _now: c.readings.voltage_v,
    ),
    ConnectorSensorDescription(
        key="energy",
        translation_key="energy",
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
        value_fn=lambda c, _now: c.readings.energy_wh,
    ),
    ConnectorSensorDescription(
        key="session_energy",
        translation_key="session_energy",
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
        suggested_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
        value_fn=lambda c, _now: c.session.energy_wh if c.session else 0.0,
    ),
    ConnectorSensorDescription(
        key="session_duration",
        translation_key="session_duration",
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=0,
        value_fn=lambda c, now: round(c.session.duration_s(now) / 60, 1) if c.session else 0.0,
    ),
    ConnectorSensorDescription(
        key="id_tag",
        translation_key="id_tag",
        value_fn=lambda c, _now: c.session.id_tag if c.session else None,
    ),
)

CHARGER_SENSORS: tuple[ChargerSensorDescription, ...] = (
    ChargerSensorDescription(
        key="last_heartbeat",
        translation_key="last_heartbeat",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        always_available=True,
        value_fn=lambda ch: ch.last_heartbeat,
    ),
    ChargerSensorDescription(
        key="firmware",
        translation_key="firmware",
        entity_category=EntityCategory.DIAGNOSTIC,
        always_available=True,
        value_fn=lambda ch: ch.info.firmware,
    ),
    ChargerSensorDescription(
        key="model",
        translation_key="model",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        always_available=True,
        value_fn=lambda ch: ch.info.model,
    ),
    ChargerSensorDescription(
        key="vendor",
        translation_key="vendor",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        always_available=True,
        value_fn=lambda ch: ch.info.vendor,
    ),
    ChargerSensorDescription(
        key="serial",
        translation_key="serial",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        always_available=True,
        value_fn=lambda ch: ch.info.serial,
    ),
    ChargerSensorDescription(
        key="station_status",
        translation_key="station_status",
        device_class=SensorDeviceClass.ENUM,
        options=[status.value for status in ConnectorStatus],
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda ch: ch.connector(0).status.value,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CariflexConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add sensors for every charger and connector."""

    def charger_entities(coordinator: ChargerCoordinator) -> list[SensorEntity]:
        return [ChargerSensor(coordinator, description) for description in CHARGER_SENSORS]

    def connector_entities(coordinator: ChargerCoordinator, connector_id: int) -> list[SensorEntity]:
        return [ConnectorSensor(coordinator, description, connector_id) for description in CONNECTOR_SENSORS]

    async_add_charger_entities(entry, async_add_entities, charger_entities, connector_entities)


class ChargerSensor(CariflexEntity, SensorEntity):
    """A charger-level sensor."""

    entity_description: ChargerSensorDescription

    @property
    def available(self) -> bool:
        """Identity values stay readable while the charger is away."""
        return self.entity_description.always_available or super().available

    @property
    def native_value(self) -> StateType | datetime:
        """The value from the model."""
        return self.entity_description.value_fn(self.charger)


class ConnectorSensor(CariflexEntity, SensorEntity):
    """A connector-level sensor."""

    entity_description: ConnectorSensorDescription

    @property
    def native_value(self) -> StateType | datetime:
        """The value from the model."""
        return self.entity_description.value_fn(self.connector, dt_util.utcnow())
