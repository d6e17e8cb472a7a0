"""Site side of the uplink to the Cariflex cloud connector (protocol: ``docs/uplink.md``).

A store-and-forward queue in SQLite (:mod:`.queue`), the roaming token list the cloud syncs
(:mod:`.token_list`) and the websocket client that drains the queue, runs the cloud's commands
and authorizes roaming badges (:mod:`.client`). Never imports Home Assistant.
"""

from __future__ import annotations

from .client import UplinkClient, UplinkState, backoff_delay
from .protocol import AUTHORIZE_TIMEOUT, COMMAND_NAMES, COMMAND_RESULTS, EVENT_KINDS, PROTOCOL_VERSION
from .queue import AsyncUplinkQueue, QueueClosedError, QueuedEvent, QueueError, Reconciliation, UplinkQueue
from .token_list import AsyncRoamingTokenStore, RoamingTokenStore, TokenListError

__all__ = [
    "AUTHORIZE_TIMEOUT",
    "COMMAND_NAMES",
    "COMMAND_RESULTS",
    "EVENT_KINDS",
    "PROTOCOL_VERSION",
    "AsyncRoamingTokenStore",
    "AsyncUplinkQueue",
    "QueueClosedError",
    "QueueError",
    "QueuedEvent",
    "Reconciliation",
    "RoamingTokenStore",
    "TokenListError",
    "UplinkClient",
    "UplinkQueue",
    "UplinkState",
    "backoff_delay",
]
