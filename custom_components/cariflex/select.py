"""Selects: whether the energy manager steers the chargers, and each connector's strategy."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import ChargerCoordinator
from .ems.pv import ChargeMode
from .ems.tariff import TariffPolicy
from .energy import EmsMode
from .entity import ConnectorEnergyEntity, SiteEntity, async_add_charger_entities
from .runtime import CariflexConfigEntry

PARALLEL_UPDATES = 1

EMS_MODE = SelectEntityDescription(
    key="ems_mode",
    translation_key="ems_mode",
    options=[mode.value for mode in EmsMode],
)
CHARGE_MODE = SelectEntityDescription(
    key="charge_mode",
    translation_key="charge_mode",
    options=[mode.value for mode in ChargeMode],
)
TARIFF_POLICY = SelectEntityDescription(
    key="tariff_policy",
    translation_key="tariff_policy",
    options=[policy.value for policy in TariffPolicy],
    entity_category=EntityCategory.CONFIG,
    entity_registry_enabled_default=False,  # for sites with tariff signals: enable where needed
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CariflexConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """The energy manager's mode on the site device; a charging mode and tariff policy per connector."""
    energy = entry.runtime_data.energy
    assert energy is not None
    async_add_entities([EmsModeSelect(energy, EMS_MODE)])

    def connector_entities(coordinator: ChargerCoordinator, connector_id: int) -> list[SelectEntity]:
        return [
            ChargeModeSelect(energy, coordinator, connector_id, CHARGE_MODE),
            TariffPolicySelect(energy, coordinator, connector_id, TARIFF_POLICY),
        ]

    async_add_charger_entities(entry, async_add_entities, lambda _coordinator: [], connector_entities)


class EmsModeSelect(SiteEntity, SelectEntity):
    """Off: chargers unmanaged (Cariflex removes its limits). On: the site's power is shared."""

    @property
    def current_option(self) -> str:
        """The mode in force."""
        return self.coordinator.mode.value

    async def async_select_option(self, option: str) -> None:
        """Change the mode (kept across restarts)."""
        await self.coordinator.async_set_mode(EmsMode(option))


class ChargeModeSelect(ConnectorEnergyEntity, SelectEntity):
    """Off, now (as fast as the site allows), min + PV (minimum always, surplus on top), PV only."""

    @property
    def current_option(self) -> str:
        """The connector's mode."""
        return self.coordinator.charge_mode(self._session_id).value

    async def async_select_option(self, option: str) -> None:
        """Change the mode (kept across restarts); the next cycle follows it at once."""
        await self.coordinator.async_set_charge_mode(self._session_id, ChargeMode(option))


class TariffPolicySelect(ConnectorEnergyEntity, SelectEntity):
    """When the connector may take grid energy: always, off-peak only, never on red days, or both."""

    @property
    def current_option(self) -> str:
        """The connector's policy."""
        return self.coordinator.tariff_policy(self._session_id).value

    async def async_select_option(self, option: str) -> None:
        """Change the policy (kept across restarts)."""
        await self.coordinator.async_set_tariff_policy(self._session_id, TariffPolicy(option))
