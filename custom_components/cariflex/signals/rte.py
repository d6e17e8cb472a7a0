"""RTE data portal access: OAuth2 client-credentials token, cached until it expires.

RTE (https://data.rte-france.com) protects every API with OAuth2 (RFC 6749 §4.4):
``POST {base}/token/oauth/`` with ``Authorization: Basic base64(client_id:client_secret)`` and
``grant_type=client_credentials`` returns ``{"access_token", "token_type": "Bearer",
"expires_in": 7200}``. Each API call then sends ``Authorization: Bearer <access_token>``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
import math

import aiohttp
from yarl import URL

from ._http import DEFAULT_TIMEOUT, JsonResponse, join_url, request_json, validate_base_url, validate_secret
from .errors import SignalAuthError, SignalResponseError
from .timeutil import require_aware

RTE_BASE_URL = "https://digital.iservices.rte-france.com"
"""Production host of the RTE APIs (token and data)."""
OAUTH_PATH = "/token/oauth/"

TOKEN_MARGIN = timedelta(seconds=60)
"""A token is renewed this long before it expires, so that it never expires in flight."""


class ClientCredentialsToken:
    """An OAuth2 client-credentials access token, fetched when needed and cached until expiry."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        token_url: URL,
        client_id: str,
        client_secret: str,
        *,
        source: str,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._session = session
        self._url = token_url
        credentials = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        self._auth = f"Basic {credentials}"  # RFC 7617, as aiohttp's deprecated BasicAuth wrote it
        self._source = source
        self._timeout = timeout
        self._token: str | None = None
        self._expires_at: datetime | None = None
        self._lock = asyncio.Lock()  # shared by several APIs: one request for a token they all wait for
        self.requests = 0
        """Token requests sent so far."""

    @property
    def expires_at(self) -> datetime | None:
        """When the cached token stops being used (None when there is none)."""
        return self._expires_at if self._token is not None else None

    def invalidate(self) -> None:
        """Forget the cached token (the API refused it)."""
        self._token = None
        self._expires_at = None

    async def get(self, now: datetime) -> str:
        """A valid access token: the cached one, or a new one from the token endpoint."""
        now = require_aware(now).astimezone(UTC)
        if (cached := self._cached(now)) is not None:
            return cached
        async with self._lock:
            if (cached := self._cached(now)) is not None:
                return cached  # another caller fetched it while this one waited
            return await self._fetch(now)

    def _cached(self, now: datetime) -> str | None:
        if self._token is not None and self._expires_at is not None and now < self._expires_at:
            return self._token
        return None

    async def _fetch(self, now: datetime) -> str:
        self.requests += 1
        try:
            response = await request_json(
                self._session,
                "POST",
                self._url,
                source=f"{self._source} token",
                headers={"Authorization": self._auth, "Accept": "application/json"},
                data={"grant_type": "client_credentials"},
                timeout=self._timeout,
            )
        except SignalResponseError as err:
            if err.status == 400:  # RFC 6749 §5.2: invalid_client, invalid_grant, unauthorized_client...
                raise SignalAuthError(str(err), status=400, code=err.code) from err
            raise
        token, lifetime = self._decode(response.body)
        self._token = token
        self._expires_at = now + max(timedelta(0), lifetime - TOKEN_MARGIN)
        return token

    def _decode(self, body: object) -> tuple[str, timedelta]:
        """The token and its lifetime from a token response (RFC 6749 §5.1)."""
        if not isinstance(body, dict):
            raise SignalResponseError(f"{self._source} token: the answer is not a JSON object")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise SignalResponseError(f"{self._source} token: no access_token in the answer")
        token_type = body.get("token_type", "Bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise SignalResponseError(f"{self._source} token: unsupported token_type {token_type!r}")
        expires_in = body.get("expires_in")
        if isinstance(expires_in, str):
            try:
                expires_in = float(expires_in)
            except ValueError:
                expires_in = None
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or not math.isfinite(expires_in):
            expires_in = 0  # no lifetime given: use the token for this request only
        return token, timedelta(seconds=max(0.0, float(expires_in)))


def rte_token(
    session: aiohttp.ClientSession,
    client_id: str,
    client_secret: str,
    *,
    base_url: str = RTE_BASE_URL,
    timeout: float = DEFAULT_TIMEOUT,
    source: str = "RTE",
) -> ClientCredentialsToken:
    """The access token of one RTE application, to share between the APIs it subscribed to."""
    base = validate_base_url(base_url)
    validate_secret(client_id, field="client_id")
    validate_secret(client_secret, field="client_secret")
    return ClientCredentialsToken(
        session, join_url(base, OAUTH_PATH), client_id, client_secret, source=source, timeout=timeout
    )


class RteApi:
    """Authenticated GETs on one RTE API; a refused token is renewed once and the call retried.

    ``token``: the application's token shared with its other APIs (:func:`rte_token`); without it
    this API gets a token of its own.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client_id: str,
        client_secret: str,
        *,
        source: str,
        base_url: str = RTE_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        token: ClientCredentialsToken | None = None,
    ) -> None:
        self._base = validate_base_url(base_url)
        self._session = session
        self._source = source
        self._timeout = timeout
        self.token = token or rte_token(
            session, client_id, client_secret, base_url=base_url, timeout=timeout, source=source
        )

    async def get(self, path: str, now: datetime, params: Mapping[str, str] | None = None) -> JsonResponse:
        """GET ``path`` with a bearer token; on HTTP 401 renew the token and try once more."""
        try:
            return await self._get(path, await self.token.get(now), params)
        except SignalAuthError as err:
            if err.status != 401:
                raise
            self.token.invalidate()
        return await self._get(path, await self.token.get(now), params)

    async def _get(self, path: str, token: str, params: Mapping[str, str] | None) -> JsonResponse:
        return await request_json(
            self._session,
            "GET",
            join_url(self._base, path),
            source=self._source,
            params=params,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=self._timeout,
        )
