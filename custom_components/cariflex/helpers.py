"""Sending commands from entities and actions, with translated errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from homeassistant.exceptions import HomeAssistantError

from .const import DOMAIN
from .ocpp.errors import CallError, CallTimeoutError, ChargerOfflineError, InvalidResponseError
from .ocpp.model import Charger, ChargerLink

T = TypeVar("T")


async def async_call_link[T](charger: Charger, action: str, send: Callable[[ChargerLink], Awaitable[T]]) -> T:
    """Run ``send`` on the charger's live link; map protocol failures to translated errors."""
    link = charger.link
    if link is None:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="charger_offline",
            translation_placeholders={"charger": charger.charger_id},
        )
    try:
        return await send(link)
    except CallTimeoutError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_timeout",
            translation_placeholders={"charger": charger.charger_id, "action": action, "timeout": f"{err.timeout:g}"},
        ) from err
    except CallError as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_error",
            translation_placeholders={
                "charger": charger.charger_id,
                "action": action,
                "code": err.code,
                "description": err.description,
            },
        ) from err
    except (InvalidResponseError, ChargerOfflineError) as err:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_failed",
            translation_placeholders={"charger": charger.charger_id, "action": action, "error": str(err)},
        ) from err


async def async_command(
    charger: Charger,
    action: str,
    send: Callable[[ChargerLink], Awaitable[str]],
    accepted: tuple[str, ...] = ("Accepted", "Unlocked", "Scheduled"),
) -> str:
    """Send a command whose answer is a status word; anything but accepted is an error.

    "Scheduled" is a yes: the charger will do it once idle (a reset or an availability change
    during a session).
    """
    status = await async_call_link(charger, action, send)
    if status not in accepted:
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="command_rejected",
            translation_placeholders={"charger": charger.charger_id, "action": action, "status": status},
        )
    return status
