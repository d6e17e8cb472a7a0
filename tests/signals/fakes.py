"""Fake Opendatasoft and RTE servers that follow the documented contracts, over real HTTP.

They serve the payloads of ``fixtures/`` (see its README) and check requests the way the real
services do: API key or bearer token, parameters, limits. Each records what it received.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime
import json
from pathlib import Path
import re
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).parent / "fixtures"

ODS_API_KEY = "3f1b7c0e9d2a4b6c8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
DATASET_ID = "signal-reseau-recharge-vehicule-electrique"
RTE_CLIENT_ID = "4c1e0f64-5b0a-4bde-9a0c-0d6c2c1f7a11"
RTE_CLIENT_SECRET = "b9d7a2e8-7c3f-4e61-8d25-3f0a6b9c4e72"


def load_fixture(name: str) -> Any:
    """The parsed JSON of ``fixtures/<name>``."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _instant(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_WHERE = re.compile(r"^(\w+) >= date'([^']+)'(?: AND (\w+) = \"([^\"]*)\")?$")
_ORDER = re.compile(r"^(\w+)(?: (ASC|DESC))?$", re.IGNORECASE)


@dataclass
class FakeOpendatasoft:
    """``GET /api/explore/v2.1/catalog/datasets/{dataset_id}/records`` over a list of rows.

    Implements ``select``, the ``where`` forms the client sends (``f >= date'...'`` and an
    optional ``AND g = "..."``), ``order_by``, ``limit`` (1..100, default 10), ``offset``
    (``offset + limit`` <= 10,000), ``Authorization: Apikey``, a daily call limit answering
    429 and ``X-RateLimit-*`` headers. ``mode`` forces a failure: ``"malformed"`` (not JSON),
    ``"not_object"``, ``"no_total"``, ``"error500"``, ``"hang"`` (never answers).
    """

    rows: list[dict[str, Any]] = field(default_factory=lambda: load_fixture("ods_zni_dataset.json"))
    api_key: str = ODS_API_KEY
    call_limit: int = 10_000
    calls: int = 0
    mode: str | None = None
    override: Any = None
    fail_after: int | None = None
    """Answer 500 to every request after this many successful ones."""
    requests: list[dict[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at teardown, so that a request held by ``"hang"`` ends."""
    auth_headers: list[str | None] = field(default_factory=list)

    @staticmethod
    def _at_or_after(value: object, bound: datetime) -> bool:
        """The ``where`` test; a value that is not a date passes, to reach the client as a bad row."""
        try:
            return _instant(value) >= bound  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return True

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/explore/v2.1/catalog/datasets/{dataset_id}/records", self.records)
        return app

    async def records(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(dict(request.query))
        self.auth_headers.append(request.headers.get("Authorization"))
        if request.match_info["dataset_id"] != DATASET_ID:
            return web.json_response(
                {"error_code": "NotFound", "message": f"Unknown dataset: {request.match_info['dataset_id']}"},
                status=404,
            )
        if request.headers.get("Authorization") != f"Apikey {self.api_key}":
            return web.json_response(load_fixture("ods_error_401.json"), status=401)
        if self.calls >= self.call_limit:
            return web.json_response(load_fixture("ods_error_429_quota.json"), status=429)
        self.calls += 1
        headers = {
            "X-RateLimit-Limit": str(self.call_limit),
            "X-RateLimit-Remaining": str(self.call_limit - self.calls),
        }
        if self.mode == "hang":
            await self.release.wait()
        if self.mode == "error500" or (self.fail_after is not None and self.calls > self.fail_after):
            return web.Response(status=500, text="<html>Internal Server Error</html>", content_type="text/html")
        if self.mode == "malformed":
            return web.Response(text='{"total_count": 3, "results": [', content_type="application/json")
        if self.override is not None:
            return web.json_response(self.override, headers=headers)
        try:
            limit = int(request.query.get("limit", "10"))
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            return web.json_response({"error_code": "InvalidRESTParameterError", "message": "bad integer"}, status=400)
        if not 1 <= limit <= 100:
            return web.json_response(load_fixture("ods_error_400_limit.json"), status=400)
        if offset < 0 or offset + limit > 10_000:
            return web.json_response(
                {
                    "error_code": "InvalidRESTParameterError",
                    "message": f"Invalid value for sum of offset + limit API parameter: {offset + limit} was found but <= 10000 is expected.",
                },
                status=400,
            )
        rows = list(self.rows)
        where = request.query.get("where")
        if where is not None:
            match = _WHERE.match(where)
            if match is None:
                return web.json_response({"error_code": "ODSQLError", "message": f"Cannot parse {where!r}"}, status=400)
            time_field, since, eq_field, eq_value = match.groups()
            bound = _instant(since)
            rows = [
                row
                for row in rows
                if self._at_or_after(row.get(time_field), bound) and (eq_field is None or row.get(eq_field) == eq_value)
            ]
        order = request.query.get("order_by")
        if order is not None:
            match = _ORDER.match(order)
            if match is None:
                return web.json_response({"error_code": "ODSQLError", "message": f"Cannot parse {order!r}"}, status=400)
            rows.sort(key=lambda row: str(row.get(match[1])), reverse=(match[2] or "ASC").upper() == "DESC")
        select = request.query.get("select")
        if select is not None:
            names = [name.strip() for name in select.split(",")]
            rows = [{name: row.get(name) for name in names} for row in rows]
        return web.json_response({"total_count": len(rows), "results": rows[offset : offset + limit]}, headers=headers)


@dataclass
class FakeRte:
    """RTE's token endpoint, Tempo calendar and EcoWatt signals.

    ``POST /token/oauth/`` checks ``Authorization: Basic`` and ``grant_type=client_credentials``.
    The APIs check the bearer token (``revoke()`` invalidates every token issued), and Tempo
    checks ``start_date``/``end_date`` like RTE (together, ISO 8601 with offset). ``mode``:
    ``"malformed"``, ``"error503"``, ``"rate_limited"`` (429 with ``Retry-After: 900``),
    ``"forbidden"`` (403: no subscription to the API), ``"refuse_all"`` (401 to every token),
    ``"invalid_grant"`` (the token endpoint answers 400).
    """

    client_id: str = RTE_CLIENT_ID
    client_secret: str = RTE_CLIENT_SECRET
    expires_in: Any = 7200
    token_type: str = "Bearer"
    token_body: Any = None
    """When set, the token endpoint answers this instead."""
    tempo: Any = field(default_factory=lambda: load_fixture("rte_tempo_calendars.json"))
    ecowatt: Any = field(default_factory=lambda: load_fixture("rte_ecowatt_signals.json"))
    mode: str | None = None
    retry_after: str | None = "900"
    issued: list[str] = field(default_factory=list)
    valid: set[str] = field(default_factory=set)
    token_requests: int = 0
    tempo_requests: list[dict[str, str]] = field(default_factory=list)
    ecowatt_requests: int = 0
    bearer_seen: list[str | None] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token/oauth/", self.token)
        app.router.add_get("/open_api/tempo_like_supply_contract/v1/tempo_like_calendars", self.tempo_calendars)
        app.router.add_get("/open_api/ecowatt/v5/signals", self.signals)
        return app

    def revoke(self) -> None:
        self.valid.clear()

    async def token(self, request: web.Request) -> web.StreamResponse:
        self.token_requests += 1
        expected = "Basic " + base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response(load_fixture("rte_token_error_401.json"), status=401)
        form = await request.post()
        if self.mode == "invalid_grant":
            return web.json_response({"error": "invalid_grant", "error_description": "Grant refused"}, status=400)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if self.token_body is not None:
            return web.json_response(self.token_body)
        token = f"tok-{len(self.issued) + 1}-" + load_fixture("rte_token.json")["access_token"][:20]
        self.issued.append(token)
        self.valid.add(token)
        body = load_fixture("rte_token.json") | {"access_token": token, "token_type": self.token_type}
        if self.expires_in is None:
            del body["expires_in"]
        else:
            body["expires_in"] = self.expires_in
        return web.json_response(body)

    def _refused(self, request: web.Request) -> web.StreamResponse | None:
        header = request.headers.get("Authorization")
        self.bearer_seen.append(header)
        if (
            self.mode == "refuse_all"
            or header is None
            or not header.startswith("Bearer ")
            or header[7:] not in self.valid
        ):
            return web.json_response(load_fixture("rte_api_error_401.json"), status=401)
        if self.mode == "forbidden":
            return web.json_response(
                {"error": "SECURITY_ERROR", "error_description": "No subscription to this API"}, status=403
            )
        if self.mode == "error503":
            return web.Response(status=503, text="Service Unavailable")
        if self.mode == "rate_limited":
            return web.json_response(
                {"error": "TOO_MANY_REQUESTS", "error_description": "One call every 15 minutes"},
                status=429,
                headers={"Retry-After": self.retry_after} if self.retry_after is not None else None,
            )
        if self.mode == "malformed":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        return None

    async def tempo_calendars(self, request: web.Request) -> web.StreamResponse:
        self.tempo_requests.append(dict(request.query))
        if (refused := self._refused(request)) is not None:
            return refused
        start, end = request.query.get("start_date"), request.query.get("end_date")
        if (start is None) != (end is None):
            return web.json_response(load_fixture("rte_tempo_error_400.json"), status=400)
        if start is None or end is None:
            return web.json_response(self.tempo)
        try:
            low, high = datetime.fromisoformat(start), datetime.fromisoformat(end)
        except ValueError:
            return web.json_response(
                {"error": "TMPLIKSUPCON_TMPLIKCAL_F04", "error_description": "Invalid date format"}, status=400
            )
        if low.tzinfo is None or high.tzinfo is None or high <= low:
            return web.json_response(
                {"error": "TMPLIKSUPCON_TMPLIKCAL_F02", "error_description": "Invalid period"}, status=400
            )
        if not isinstance(self.tempo, dict) or not isinstance(self.tempo.get("tempo_like_calendars"), dict):
            return web.json_response(self.tempo)
        values = [
            value
            for value in self.tempo["tempo_like_calendars"]["values"]
            if low <= datetime.fromisoformat(value["start_date"]) < high
        ]
        return web.json_response({"tempo_like_calendars": {"start_date": start, "end_date": end, "values": values}})

    async def signals(self, request: web.Request) -> web.StreamResponse:
        self.ecowatt_requests += 1
        if (refused := self._refused(request)) is not None:
            return refused
        return web.json_response(self.ecowatt)
