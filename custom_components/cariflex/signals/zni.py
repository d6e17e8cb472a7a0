"""The EDF-SEI grid signal of a ZNI territory, read from an EDF Open Data (Opendatasoft) portal.

Seeds, Annex B: in the non-interconnected zones (Corse, Réunion, Guadeloupe, Guyane,
Martinique, Mayotte, Îles du Ponant) EDF publishes a binary signal for EV charging: 1 =
favourable slot (full power), 0 = unfavourable slot (half power under Advenir). Fine time step
(e.g. 10 minutes), 48 h of history, a personal API key, a quota of about 10,000 requests a day.

Contract (Opendatasoft Explore API v2.1, records endpoint)::

    GET {base}/api/explore/v2.1/catalog/datasets/{dataset_id}/records
        ?select=<time>,<value>&where=<time> >= date'2025-03-10T12:00:00Z' [AND <territory_field> = "Martinique"]
        &order_by=<time> ASC&limit=100&offset=0&timezone=UTC
    Authorization: Apikey <key>

    {"total_count": 432, "results": [{"<time>": "2025-03-10T12:00:00+00:00", "<value>": 1}, ...]}

At most 100 records a request and ``offset + limit`` <= 10,000: the client follows the pages
while ``total_count`` says there are more. Each page is one request of the quota. A used-up
quota answers HTTP 429 ``{"errorcode": 10002, "reset_time": ..., "limit_time_unit": "day",
"call_limit": 10000, "error": ...}``.

The dataset's field names are settings (``time_field``, ``value_field``, optional ``end_field``
and ``territory_field``): they differ between portals. No clock inside: every method takes ``now``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
import math
import re

import aiohttp

from ._http import DEFAULT_TIMEOUT, join_url, request_json, validate_base_url, validate_secret
from .errors import SignalConfigError, SignalError, SignalRateLimitError, SignalResponseError
from .quota import DailyQuota
from .timeutil import parse_instant, require_aware

SOURCE = "ZNI signal"
RECORDS_PATH = "/api/explore/v2.1/catalog/datasets/{dataset_id}/records"
PAGE_SIZE = 100
"""Records per request: the maximum of the records endpoint."""
MAX_WINDOW = 10_000
"""The records endpoint refuses ``offset + limit`` above this."""
HISTORY = timedelta(hours=48)
"""Slots that ended longer ago than this are dropped."""
UPDATE_INTERVAL = timedelta(minutes=10)
DAILY_QUOTA = 10_000
DEFAULT_SLOT = timedelta(minutes=10)
"""Slot length when the dataset gives no end and there are too few records to infer it."""
OVERLAP = timedelta(hours=1)
"""A refresh asks again for this much before the last success, to pick up late corrections."""

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DATASET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, slots=True)
class SignalSlot:
    """One slot ``[start, end)`` in UTC with its value: 1 favourable, 0 unfavourable."""

    start: datetime
    end: datetime
    value: int


def _field(value: object, name: str) -> str:
    if not isinstance(value, str) or not _FIELD.match(value):
        raise SignalConfigError(f"{name} must be a dataset field name (letters, digits, _), not {value!r}", field=name)
    return value


def _binary(value: object) -> int | None:
    """0 or 1 from a JSON value (number, boolean, or their text), else None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value) and value in (0, 1):
        return int(value)
    return None


class ZniSignalClient:
    """Reads the EDF-SEI signal from an Opendatasoft records endpoint and keeps its time slots.

    Call :meth:`refresh` every :data:`UPDATE_INTERVAL` (:meth:`is_due` says when); read
    :meth:`value_at` (1, 0, or None when unknown: the caller applies its safe default) and
    :meth:`forecast` (the current and future slots, for the planner). Errors of a refresh
    leave the known slots in place.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        dataset_id: str,
        api_key: str | None,
        time_field: str,
        value_field: str,
        territory: str | None = None,
        territory_field: str | None = None,
        end_field: str | None = None,
        slot_length: timedelta | None = None,
        daily_quota: int = DAILY_QUOTA,
        interval: timedelta = UPDATE_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        base = validate_base_url(base_url)
        if not isinstance(dataset_id, str) or not _DATASET.match(dataset_id):
            raise SignalConfigError(f"dataset_id must be a dataset identifier, not {dataset_id!r}", field="dataset_id")
        self._api_key = None if api_key is None else validate_secret(api_key, field="api_key")
        self.time_field = _field(time_field, "time_field")
        self.value_field = _field(value_field, "value_field")
        self.end_field = None if end_field is None else _field(end_field, "end_field")
        fields = [name for name in (self.time_field, self.value_field, self.end_field) if name is not None]
        if len(set(fields)) != len(fields):
            raise SignalConfigError(
                "time_field, value_field and end_field must be different fields", field="value_field"
            )
        if (territory is None) != (territory_field is None):
            raise SignalConfigError("territory and territory_field go together", field="territory")
        if territory is not None and (
            not isinstance(territory, str)
            or not territory.strip()
            or not territory.isprintable()
            or any(ch in territory for ch in "\"'\\")
        ):
            raise SignalConfigError(f"territory must be a plain name, not {territory!r}", field="territory")
        self.territory = territory
        self.territory_field = None if territory_field is None else _field(territory_field, "territory_field")
        if slot_length is not None and slot_length <= timedelta(0):
            raise SignalConfigError(f"slot_length must be positive, not {slot_length}", field="slot_length")
        if interval <= timedelta(0):
            raise SignalConfigError(f"interval must be positive, not {interval}", field="interval")
        self.quota = DailyQuota(daily_quota)
        self.interval = interval
        self._slot_length = slot_length
        self._url = join_url(base, RECORDS_PATH.format(dataset_id=dataset_id))
        self._session = session
        self._timeout = timeout
        self._known: dict[datetime, tuple[int, datetime | None]] = {}
        self._slots: list[SignalSlot] = []
        self._last_attempt: datetime | None = None
        self.last_success: datetime | None = None
        self.invalid_records = 0
        """Records of the last refresh that had no usable time or value."""
        self.truncated = False
        """Whether the last refresh stopped at the endpoint's 10,000-record window."""

    # -- scheduling and quota --------------------------------------------------------------

    def is_due(self, now: datetime) -> bool:
        """Whether :attr:`interval` has passed since the last refresh attempt."""
        return self._last_attempt is None or require_aware(now) - self._last_attempt >= self.interval

    def quota_remaining(self, now: datetime) -> int:
        """Requests still allowed today (UTC day)."""
        return self.quota.remaining(now)

    # -- fetching ----------------------------------------------------------------------------

    def _since(self, now: datetime) -> datetime:
        if self.last_success is None:
            return now - HISTORY
        return max(now - HISTORY, self.last_success - OVERLAP)

    def _params(self, since: datetime, offset: int) -> dict[str, str | int]:
        where = f"{self.time_field} >= date'{since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}'"
        if self.territory is not None:
            where += f' AND {self.territory_field} = "{self.territory}"'
        fields = [self.time_field, self.value_field] + ([self.end_field] if self.end_field else [])
        return {
            "select": ",".join(fields),
            "where": where,
            "order_by": f"{self.time_field} ASC",
            "limit": PAGE_SIZE,
            "offset": offset,
            "timezone": "UTC",
        }

    async def refresh(self, now: datetime) -> int:
        """Fetch the slots from the last success (or the last 48 h) onwards; return the records read.

        Raises :class:`SignalQuotaExceededError` before sending when today's quota is used up,
        and the errors of :mod:`.errors` otherwise; the pages read before an error are kept.
        """
        now = require_aware(now).astimezone(UTC)
        self._last_attempt = now
        since = self._since(now)
        received: dict[datetime, tuple[int, datetime | None]] = {}
        invalid = 0
        offset = 0
        self.truncated = False
        headers = {"Accept": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Apikey {self._api_key}"
        try:
            while True:
                self.quota.acquire(now, source=SOURCE)
                try:
                    response = await request_json(
                        self._session,
                        "GET",
                        self._url,
                        source=SOURCE,
                        params=self._params(since, offset),
                        headers=headers,
                        timeout=self._timeout,
                    )
                except SignalRateLimitError as err:
                    self.quota.block_until(self._blocked_until(err, now))
                    raise
                remaining = response.headers.get("X-RateLimit-Remaining", "")
                if remaining.strip().isdigit():
                    self.quota.sync_remaining(now, int(remaining))
                results, total = self._page(response.body)
                for record in results:
                    parsed = self._record(record)
                    if parsed is None:
                        invalid += 1
                    else:
                        received[parsed[0]] = parsed[1:]
                offset += len(results)
                if not results or offset >= total:
                    break
                if offset + PAGE_SIZE > MAX_WINDOW:
                    self.truncated = True
                    break
        except SignalError:
            self._store(received, now, replace_from=None)
            raise
        finally:
            self.invalid_records = invalid
        # A truncated answer does not say which slots were withdrawn: keep those it did not reach.
        self._store(received, now, replace_from=None if self.truncated else since)
        self.last_success = now
        return offset

    @staticmethod
    def _blocked_until(err: SignalRateLimitError, now: datetime) -> datetime:
        """When the server quota opens again: its ``reset_time``, its ``Retry-After``, else next UTC midnight."""
        reset = parse_instant(err.body.get("reset_time")) if isinstance(err.body, dict) else None
        if reset is not None and reset > now:
            return reset
        if err.retry_after is not None:
            return now + timedelta(seconds=err.retry_after)
        return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), datetime.min.time(), UTC)

    @staticmethod
    def _page(body: object) -> tuple[list[object], int]:
        if not isinstance(body, dict):
            raise SignalResponseError(f"{SOURCE}: the answer is not a JSON object")
        results, total = body.get("results"), body.get("total_count")
        if not isinstance(results, list) or isinstance(total, bool) or not isinstance(total, int):
            raise SignalResponseError(f"{SOURCE}: the answer has no results list or no total_count")
        return results, total

    def _record(self, record: object) -> tuple[datetime, int, datetime | None] | None:
        """(start, value, end) of one record, or None when it cannot be used."""
        if not isinstance(record, dict):
            return None
        start = parse_instant(record.get(self.time_field))
        value = _binary(record.get(self.value_field))
        if start is None or value is None:
            return None
        end = parse_instant(record.get(self.end_field)) if self.end_field is not None else None
        if end is not None and end <= start:
            return None
        return start.astimezone(UTC), value, None if end is None else end.astimezone(UTC)

    # -- slots -------------------------------------------------------------------------------

    def _store(
        self, received: dict[datetime, tuple[int, datetime | None]], now: datetime, *, replace_from: datetime | None
    ) -> None:
        """Merge ``received``; after a complete answer, drop known slots from ``replace_from`` it no longer has."""
        if replace_from is not None:
            self._known = {start: item for start, item in self._known.items() if start < replace_from}
        self._known.update(received)
        starts = sorted(self._known)
        gaps = Counter(later - earlier for earlier, later in pairwise(starts))
        step = self._slot_length or (gaps.most_common(1)[0][0] if gaps else DEFAULT_SLOT)
        slots: list[SignalSlot] = []
        for index, start in enumerate(starts):
            value, end = self._known[start]
            if end is None:
                end = start + step
                if index + 1 < len(starts):
                    end = min(end, starts[index + 1])
            slots.append(SignalSlot(start=start, end=end, value=value))
        horizon = now - HISTORY
        self._slots = [slot for slot in slots if slot.end > horizon]
        self._known = {slot.start: self._known[slot.start] for slot in self._slots}

    @property
    def slots(self) -> tuple[SignalSlot, ...]:
        """Every known slot (48 h of history and the future), in time order."""
        return tuple(self._slots)

    def value_at(self, now: datetime) -> int | None:
        """The signal at ``now``: 1 favourable, 0 unfavourable, None when no known slot covers it."""
        require_aware(now)
        index = bisect_right([slot.start for slot in self._slots], now) - 1
        if index >= 0 and now < self._slots[index].end:
            return self._slots[index].value
        return None

    def forecast(self, now: datetime) -> list[SignalSlot]:
        """The slot running at ``now`` and those to come."""
        require_aware(now)
        return [slot for slot in self._slots if slot.end > now]

    def history(self, now: datetime) -> list[SignalSlot]:
        """The slots that ended by ``now`` (at most 48 h back)."""
        require_aware(now)
        return [slot for slot in self._slots if slot.end <= now]
