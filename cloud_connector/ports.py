"""What the OCPI layer needs from the site uplink, as a structural type.

:class:`cloud_connector.uplink.SiteHub` fits :class:`SiteHubPort`; the OCPI modules only use this protocol,
so they do not depend on the websocket endpoint (and tests may give them any hub).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


class SiteHubPort(Protocol):
    """The part of the uplink's hub the OCPI layer uses: reach a connected site's chargers."""

    def connected(self, site_id: str) -> bool: ...

    async def command(
        self, site_id: str, name: str, charger_id: str, args: Mapping[str, Any], timeout: float = 30.0
    ) -> object:
        """Send a command; the result has ``result`` (accepted/rejected/failed/unknown_charger/timeout), ``detail``."""
        ...


@dataclass(frozen=True)
class Outcome:
    """A site's answer to a command."""

    result: str
    detail: str = ""


def command_outcome(value: object) -> Outcome:
    """Read ``result``/``detail`` from the hub's result (``uplink.CommandResult`` or alike)."""
    return Outcome(str(getattr(value, "result", "failed")), str(getattr(value, "detail", "") or ""))
