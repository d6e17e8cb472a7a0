"""Select: whether the energy manager steers the chargers."""

from __future__ import annotations

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .energy import EmsMode
from .entity import SiteEntity
from .runtime import CariflexConfigEntry

PARALLEL_UPDATES = 1

EMS_MODE = SelectEntityDescription(
    key="ems_mode",
    translation_key="ems_mode",
    options=[mode.value for mode in EmsMode],
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CariflexConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the energy manager's mode on the site device."""
    assert entry.runtime_data.energy is not None
    async_add_entities([EmsModeSelect(entry.runtime_data.energy, EMS_MODE)])


class EmsModeSelect(SiteEntity, SelectEntity):
    """Off: chargers unmanaged (Cariflex removes its limits). On: the site's power is shared."""

    @property
    def current_option(self) -> str:
        """The mode in force."""
        return self.coordinator.mode.value

    async def async_select_option(self, option: str) -> None:
        """Change the mode (kept across restarts)."""
        await self.coordinator.async_set_mode(EmsMode(option))
