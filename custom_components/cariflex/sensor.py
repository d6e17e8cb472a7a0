"""Sensors: status, power, currents, voltage, energy and session values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
import math
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfFrequency,
    UnitOfPower,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType
from homeassistant.helpers.update_coordinator import CoordinatorEntity
from homeassistant.util import dt as dt_util

from .const import DOMAIN
from .coordinator import ChargerCoordinator
from .ems.allocator import Reason
from .ems.strategy import REASONS as STRATEGY_REASONS, StrategyResult
from .energy import SITE_NODE, EmsStatus, EnergyCoordinator, EnergyState
from .entity import CariflexEntity, CloudEntity, ConnectorEnergyEntity, SiteEntity, async_add_charger_entities
from .meters import MeterCoordinator
from .modbus import Quantity
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


@dataclass(frozen=True, kw_only=True)
class SiteSensorDescription(SensorEntityDescription):
    """A value of the energy manager's last cycle, for the site."""

    value_fn: Callable[[EnergyState], StateType]
    node_attribute: str | None = None  # the node power it shows (so boards can show theirs)
    attributes_fn: Callable[[EnergyCoordinator], Mapping[str, Any]] | None = None


def node_power(state: EnergyState, node_id: str, attribute: str) -> float | None:
    """A node's available or allocated power in the last cycle (None when unlimited or unknown)."""
    if state.result is None or node_id not in state.result.allocation.nodes:
        return None
    value = float(getattr(state.result.allocation.nodes[node_id], attribute))
    return None if math.isinf(value) else round(value)


def _site_power(state: EnergyState, attribute: str) -> float | None:
    return node_power(state, SITE_NODE, attribute)


_SITE_POWER: dict[str, Any] = {
    "device_class": SensorDeviceClass.POWER,
    "state_class": SensorStateClass.MEASUREMENT,
    "native_unit_of_measurement": UnitOfPower.WATT,
    "suggested_unit_of_measurement": UnitOfPower.KILO_WATT,
    "suggested_display_precision": 1,
}
"""A power the energy manager computes, shown in kW."""

SITE_SENSORS: tuple[SiteSensorDescription, ...] = (
    SiteSensorDescription(
        key="available_power",
        translation_key="available_power",
        **_SITE_POWER,
        node_attribute="available_power_w",
        value_fn=lambda state: _site_power(state, "available_power_w"),
    ),
    SiteSensorDescription(
        key="allocated_power",
        translation_key="allocated_power",
        **_SITE_POWER,
        node_attribute="allocated_power_w",
        value_fn=lambda state: _site_power(state, "allocated_power_w"),
    ),
    SiteSensorDescription(
        key="ems_status",
        translation_key="ems_status",
        device_class=SensorDeviceClass.ENUM,
        options=[status.value for status in EmsStatus],
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda state: state.status.value,
    ),
)
PV_SURPLUS = SiteSensorDescription(
    key="pv_surplus",
    translation_key="pv_surplus",
    **_SITE_POWER,
    value_fn=lambda state: None if state.strategy is None else state.strategy.surplus_w,
    attributes_fn=lambda energy: {"source": energy.data.surplus_source},  # meter, or without one inverter or forecast
)
ZNI_CAP = SiteSensorDescription(
    key="zni_cap",
    translation_key="zni_cap",
    **_SITE_POWER,
    value_fn=lambda state: zni_cap_w(state.strategy),
)
TEMPO_COLOUR = SiteSensorDescription(
    key="tempo_colour",
    translation_key="tempo_colour",
    device_class=SensorDeviceClass.ENUM,
    options=["blue", "white", "red"],
    value_fn=lambda state: state.tariff.tempo,
    attributes_fn=lambda energy: {"tomorrow": energy.tariffs.tempo_tomorrow(dt_util.utcnow())},
)
ECOWATT_COLOURS = {1: "green", 2: "orange", 3: "red"}
ECOWATT_LEVEL = SiteSensorDescription(
    key="ecowatt_level",
    translation_key="ecowatt_level",
    device_class=SensorDeviceClass.ENUM,
    options=list(ECOWATT_COLOURS.values()),
    value_fn=lambda state: None if state.tariff.ecowatt is None else ECOWATT_COLOURS[state.tariff.ecowatt],
)
LIMIT_REASONS: list[str] = sorted({*(str(reason) for reason in Reason), "board_limit", "unmanaged", *STRATEGY_REASONS})
LIMIT_REASON = SensorEntityDescription(
    key="limit_reason",
    translation_key="limit_reason",
    device_class=SensorDeviceClass.ENUM,
    options=LIMIT_REASONS,
    entity_category=EntityCategory.DIAGNOSTIC,
)


CLOUD_QUEUE = SensorEntityDescription(
    key="cloud_queue",
    translation_key="cloud_queue",
    state_class=SensorStateClass.MEASUREMENT,
    native_unit_of_measurement="events",
    entity_category=EntityCategory.DIAGNOSTIC,
)


PLANNED_POWER = SensorEntityDescription(
    key="planned_power",
    translation_key="planned_power",
    entity_registry_enabled_default=False,  # with the planner's inputs
    **_SITE_POWER,
)


def zni_cap_w(strategy: StrategyResult | None) -> float | None:
    """The total power the ZNI signal allows the sessions while it is 0 (None while it is 1)."""
    if strategy is None or not strategy.zni_cap_active:
        return None
    return round(sum(strategy.zni.caps_w.values()), 1)


def limit_reason(reason: str | None) -> tuple[str | None, str | None]:
    """A session's reason as one of :data:`LIMIT_REASONS`, and the board it names, if any."""
    if reason is None:
        return None, None
    key, _, node = reason.partition(":")
    return (key if key in LIMIT_REASONS else "unmanaged"), (node or None)


ALLOCATED_CURRENT = SensorEntityDescription(
    key="allocated_current",
    translation_key="allocated_current",
    device_class=SensorDeviceClass.CURRENT,
    state_class=SensorStateClass.MEASUREMENT,
    native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
    suggested_display_precision=0,
)


@dataclass(frozen=True, kw_only=True)
class MeterSensorDescription(SensorEntityDescription):
    """A quantity read from a Modbus device."""

    quantity: Quantity


def _meter(key: str, quantity: Quantity, **kwargs: Any) -> MeterSensorDescription:
    return MeterSensorDescription(key=key, translation_key=f"meter_{key}", quantity=quantity, **kwargs)


_POWER = {
    "device_class": SensorDeviceClass.POWER,
    "state_class": SensorStateClass.MEASUREMENT,
    "native_unit_of_measurement": UnitOfPower.WATT,
    "suggested_display_precision": 0,
}
_CURRENT = {
    "device_class": SensorDeviceClass.CURRENT,
    "state_class": SensorStateClass.MEASUREMENT,
    "native_unit_of_measurement": UnitOfElectricCurrent.AMPERE,
    "suggested_display_precision": 1,
}
_VOLTAGE = {
    "device_class": SensorDeviceClass.VOLTAGE,
    "state_class": SensorStateClass.MEASUREMENT,
    "native_unit_of_measurement": UnitOfElectricPotential.VOLT,
    "suggested_display_precision": 0,
    "entity_registry_enabled_default": False,
}
_ENERGY = {
    "device_class": SensorDeviceClass.ENERGY,
    "state_class": SensorStateClass.TOTAL_INCREASING,
    "native_unit_of_measurement": UnitOfEnergy.WATT_HOUR,
    "suggested_unit_of_measurement": UnitOfEnergy.KILO_WATT_HOUR,
    "suggested_display_precision": 2,
}
METER_SENSORS: tuple[MeterSensorDescription, ...] = (
    _meter("power", Quantity.POWER_W, **_POWER),
    *(_meter(f"power_{p}", Quantity(f"power_w_{p}"), **_POWER) for p in ("l1", "l2", "l3")),
    *(_meter(f"current_{p}", Quantity(f"current_a_{p}"), **_CURRENT) for p in ("l1", "l2", "l3")),
    *(_meter(f"voltage_{p}", Quantity(f"voltage_v_{p}"), **_VOLTAGE) for p in ("l1", "l2", "l3")),
    _meter("energy_import", Quantity.ENERGY_IMPORT_WH, **_ENERGY),
    _meter("energy_export", Quantity.ENERGY_EXPORT_WH, **_ENERGY),
    _meter(
        "frequency",
        Quantity.FREQUENCY_HZ,
        device_class=SensorDeviceClass.FREQUENCY,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfFrequency.HERTZ,
        entity_registry_enabled_default=False,
    ),
    _meter(
        "soc",
        Quantity.SOC_PERCENT,
        device_class=SensorDeviceClass.BATTERY,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
    ),
    _meter("pv_power", Quantity.PV_POWER_W, **_POWER),
    _meter("battery_power", Quantity.BATTERY_POWER_W, **_POWER),
)


def meter_quantities(profile_quantities: frozenset[Quantity]) -> set[Quantity]:
    """What a device shows: what its profile maps (total power also from the phases)."""
    shown = set(profile_quantities)
    if {Quantity.POWER_W_L1, Quantity.POWER_W_L2, Quantity.POWER_W_L3} & shown:
        shown.add(Quantity.POWER_W)
    return shown


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CariflexConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add sensors for the site, every charger and every connector."""
    energy = entry.runtime_data.energy
    assert energy is not None
    site_sensors = [*SITE_SENSORS]
    if energy.has_meter or energy.has_pv_data:
        site_sensors.append(PV_SURPLUS)
    if energy.zni.enabled:
        site_sensors.append(ZNI_CAP)
    if energy.tariffs.tempo_client is not None:  # a Tempo entity of the user's already shows it
        site_sensors.append(TEMPO_COLOUR)
    if energy.tariffs.ecowatt_client is not None:
        site_sensors.append(ECOWATT_LEVEL)
    async_add_entities([SiteSensor(energy, description) for description in site_sensors])
    if (cloud := entry.runtime_data.cloud) is not None:
        async_add_entities([CloudQueueSensor(cloud, CLOUD_QUEUE)])

    def charger_entities(coordinator: ChargerCoordinator) -> list[SensorEntity]:
        return [ChargerSensor(coordinator, description) for description in CHARGER_SENSORS]

    def connector_entities(coordinator: ChargerCoordinator, connector_id: int) -> list[SensorEntity]:
        return [
            *(ConnectorSensor(coordinator, description, connector_id) for description in CONNECTOR_SENSORS),
            AllocatedCurrentSensor(energy, coordinator, connector_id, ALLOCATED_CURRENT),
            LimitReasonSensor(energy, coordinator, connector_id, LIMIT_REASON),
            PlannedPowerSensor(energy, coordinator, connector_id, PLANNED_POWER),
        ]

    async_add_charger_entities(entry, async_add_entities, charger_entities, connector_entities)

    def add_meter(meter: MeterCoordinator) -> None:
        shown = meter_quantities(meter.profile.quantities)
        async_add_entities(
            [MeterSensor(meter, description) for description in METER_SENSORS if description.quantity in shown],
            config_subentry_id=meter.subentry_id,
        )

    entry.runtime_data.on_new_meter(add_meter)

    def add_board(board_id: str, title: str) -> None:
        async_add_entities(
            [BoardSensor(energy, board_id, description) for description in SITE_SENSORS if description.node_attribute],
            config_subentry_id=board_id,
        )

    entry.runtime_data.on_new_board(add_board)


class BoardSensor(CoordinatorEntity[EnergyCoordinator], SensorEntity):
    """Available or allocated power of a sub-board."""

    _attr_has_entity_name = True
    entity_description: SiteSensorDescription

    def __init__(self, energy: EnergyCoordinator, board_id: str, description: SiteSensorDescription) -> None:
        super().__init__(energy)
        self.entity_description = description
        self._board_id = board_id
        self._attr_unique_id = f"board_{board_id}_{description.key}"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, f"board_{board_id}")})

    @property
    def native_value(self) -> float | None:
        """The board's value in the last cycle."""
        assert self.entity_description.node_attribute is not None
        return node_power(self.coordinator.data, self._board_id, self.entity_description.node_attribute)


class MeterSensor(CoordinatorEntity[MeterCoordinator], SensorEntity):
    """A measurement of a Modbus meter, inverter or battery."""

    _attr_has_entity_name = True
    entity_description: MeterSensorDescription

    def __init__(self, meter: MeterCoordinator, description: MeterSensorDescription) -> None:
        super().__init__(meter)
        self.entity_description = description
        self._attr_unique_id = f"{meter.device_key}_{description.key}"
        self._attr_device_info = DeviceInfo(identifiers={(DOMAIN, meter.device_key)})

    @property
    def native_value(self) -> float | None:
        """The last reading."""
        reading = self.coordinator.data
        return None if reading is None else reading.get(self.entity_description.quantity)


class SiteSensor(SiteEntity, SensorEntity):
    """A site value from the energy manager."""

    entity_description: SiteSensorDescription

    @property
    def native_value(self) -> StateType:
        """The value of the last cycle."""
        return self.entity_description.value_fn(self.coordinator.data)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        """More of the value (tomorrow's Tempo colour...), when the description has any."""
        attributes = self.entity_description.attributes_fn
        return None if attributes is None else attributes(self.coordinator)


class AllocatedCurrentSensor(ConnectorEnergyEntity, SensorEntity):
    """The current the energy manager gives a connector's session (0: paused; none: no session)."""

    @property
    def native_value(self) -> float | None:
        """The setpoint of the last cycle."""
        return self.coordinator.data.setpoint(self._session_id)

    @property
    def extra_state_attributes(self) -> dict[str, str | None]:
        """Why the session got this current (site limit, charger maximum, paused...)."""
        return {"reason": self.coordinator.data.reason(self._session_id)}


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


class LimitReasonSensor(ConnectorEnergyEntity, SensorEntity):
    """Why the connector's session has its current: site or board limit, ZNI cap, PV waiting, paused..."""

    @property
    def native_value(self) -> str | None:
        """The reason of the last cycle (unknown without a session)."""
        state = self.coordinator.data
        if state.result is None:
            return "unmanaged" if state.target(self._session_id) is not None else None
        return limit_reason(state.reason(self._session_id))[0]

    @property
    def extra_state_attributes(self) -> dict[str, str | None]:
        """The board that bound it and the strategy's own reason."""
        state = self.coordinator.data
        board = limit_reason(state.reason(self._session_id))[1]
        return {"board": board, "strategy": state.target(self._session_id)}


class CloudQueueSensor(CloudEntity, SensorEntity):
    """Events waiting for the cloud connector; the last sync and the link's state as attributes."""

    @property
    def native_value(self) -> int | None:
        """How many events the cloud has not acknowledged yet."""
        return None if self.cloud.client is None else self.cloud.client.queue_length

    @property
    def extra_state_attributes(self) -> dict[str, str | None]:
        """When the cloud last acknowledged an event, and the link's state."""
        client = self.cloud.client
        if client is None:
            return {}
        last = client.last_sync
        return {"last_sync": last.isoformat() if last else None, "state": str(client.state)}


class PlannedPowerSensor(ConnectorEnergyEntity, SensorEntity):
    """The planner's power for the connector in the current slot; the whole schedule as an attribute."""

    @property
    def native_value(self) -> float | None:
        """This slot's planned power (unknown when the session is not planned)."""
        plan = self.coordinator.planning.plan
        if plan is None or self._session_id not in plan.sessions:
            return None
        session = plan.sessions[self._session_id]
        slot = int((dt_util.utcnow().timestamp() - plan.start) // plan.slot_s)
        return round(session.power_w[slot], 1) if 0 <= slot < plan.slots else None

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """The schedule (slot start, power) for a dashboard, and how the plan was made."""
        plan = self.coordinator.planning.plan
        if plan is None or self._session_id not in plan.sessions:
            return {}
        session = plan.sessions[self._session_id]
        return {
            "schedule": [
                {"start": dt_util.utc_from_timestamp(plan.slot_start(slot)).isoformat(), "power_w": round(watts, 1)}
                for slot, watts in enumerate(session.power_w)
            ],
            "energy_kwh": round(session.energy_kwh, 2),
            "unmet_kwh": round(session.unmet_kwh, 2),
            "method": str(plan.method),
            "cost_eur": round(plan.cost_eur, 2),
        }
