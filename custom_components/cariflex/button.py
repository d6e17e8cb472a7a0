"""Buttons: reset the charger, unlock a connector."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .compat import ButtonDeviceClass
from .coordinator import ChargerCoordinator
from .entity import CariflexEntity, async_add_charger_entities
from .helpers import async_command
from .ocpp.model import ChargerLink, ResetKind
from .runtime import CariflexConfigEntry

PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class CommandButtonDescription(ButtonEntityDescription):
    """A button that sends one command; ``connector_id`` is 0 for the charger."""

    press_fn: Callable[[ChargerLink, int], Awaitable[str]]


RESET = CommandButtonDescription(
    key="reset",
    translation_key="reset",
    device_class=ButtonDeviceClass.RESTART,
    entity_category=EntityCategory.CONFIG,
    press_fn=lambda link, _cid: link.reset(ResetKind.SOFT),
)
HARD_RESET = CommandButtonDescription(
    key="hard_reset",
    translation_key="hard_reset",
    device_class=ButtonDeviceClass.RESTART,
    entity_category=EntityCategory.CONFIG,
    entity_registry_enabled_default=False,
    press_fn=lambda link, _cid: link.reset(ResetKind.HARD),
)
UNLOCK = CommandButtonDescription(
    key="unlock",
    translation_key="unlock",
    press_fn=lambda link, cid: link.unlock(cid),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: CariflexConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add reset buttons per charger and unlock buttons per connector."""

    def charger_entities(coordinator: ChargerCoordinator) -> list[ButtonEntity]:
        return [CommandButton(coordinator, RESET), CommandButton(coordinator, HARD_RESET)]

    def connector_entities(coordinator: ChargerCoordinator, connector_id: int) -> list[ButtonEntity]:
        return [CommandButton(coordinator, UNLOCK, connector_id)]

    async_add_charger_entities(entry, async_add_entities, charger_entities, connector_entities)


class CommandButton(CariflexEntity, ButtonEntity):
    """Sends its command; a refusal by the charger is reported as an error."""

    entity_description: CommandButtonDescription

    async def async_press(self) -> None:
        """Send the command."""
        await async_command(
            self.charger,
            self.entity_description.key,
            lambda link: self.entity_description.press_fn(link, self.connector_id or 0),
        )
