"""Site side of the uplink to the Cariflex cloud connector (protocol: ``docs/uplink.md``).

A store-and-forward queue in SQLite (:mod:`.queue`) and the websocket client that drains it
and runs the cloud's commands (:mod:`.client`). Never imports Home Assistant.
"""

from __future__ import annotations

from .client import UplinkClient, UplinkState, backoff_delay
from .protocol import COMMAND_NAMES, COMMAND_RESULTS, EVENT_KINDS, PROTOCOL_VERSION
from .queue import AsyncUplinkQueue, QueuedEvent, QueueError, Reconciliation, UplinkQueue

__all__ = [
    "COMMAND_NAMES",
    "COMMAND_RESULTS",
    "EVENT_KINDS",
    "PROTOCOL_VERSION",
    "AsyncUplinkQueue",
    "QueueError",
    "QueuedEvent",
    "Reconciliation",
    "UplinkClient",
    "UplinkQueue",
    "UplinkState",
    "backoff_delay",
]
