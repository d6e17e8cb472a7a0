"""Requests to peers: credentials token header (base64, or plain for peers that want it), routing and
request-id headers, the envelope read back, and the exchange recorded on the peer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
import json
import logging
from typing import Any
import uuid

import aiohttp

from ..repo.peers import Peer, PeerRepo
from ..storage import Database
from .transport import MISSING, authorization_header

_LOGGER = logging.getLogger(__name__)


class PeerCallError(Exception):
    """A request to a peer failed (network, timeout, HTTP error, OCPI error or unreadable answer)."""


@dataclass(frozen=True, kw_only=True)
class Answer:
    """A peer's answer that was a proper OCPI envelope."""

    http_status: int
    status_code: int
    message: str | None
    data: Any
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.http_status < 300 and 1000 <= self.status_code < 2000


class OcpiClient:
    """Talks to peers on behalf of our CPO parties."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        db: Database,
        clock: Callable[[], datetime],
        timeout: float,
    ) -> None:
        self.http = http
        self.db = db
        self.clock = clock
        self.timeout = timeout

    async def call(
        self,
        peer: Peer,
        method: str,
        url: str,
        *,
        module: str,
        body: Any = MISSING,
        token: str | None = None,
        routing: tuple[tuple[str, str], tuple[str, str]] | None = None,
        timeout: float | None = None,
    ) -> Answer:
        """Send one request; raises PeerCallError unless the peer answered with an OCPI envelope.

        ``token`` overrides the peer's stored token (registration with a token A). ``routing`` is
        ((from country, from party), (to country, to party)) for the routing headers of functional modules.
        """
        credential = token if token is not None else peer.token_out
        assert credential is not None, "a pending peer is only called with its token A"
        try:
            answer = await self._send(method, url, body, credential, peer.plain_auth, routing, timeout)
            if answer.http_status == 401 and not peer.plain_auth:
                # Many 2.1.1/2.2 implementations expect the token as is: try once, remember if it works.
                plain = await self._send(method, url, body, credential, True, routing, timeout)
                if plain.http_status != 401:
                    _LOGGER.info("Peer %s wants plain tokens", peer.id, extra={"peer": peer.id})
                    await PeerRepo(self.db).set_plain_auth(peer.id, True)
                    answer = plain
        except PeerCallError as err:
            await self._record(peer, f"{method} {module} -> failed", str(err))
            raise
        summary = f"{method} {module} -> {answer.http_status}/{answer.status_code}"
        await self._record(peer, summary, None if answer.ok else (answer.message or "error"))
        return answer

    async def _send(  # noqa: PLR0917 - private, called twice with the same order
        self,
        method: str,
        url: str,
        body: Any,
        token: str,
        plain: bool,
        routing: tuple[tuple[str, str], tuple[str, str]] | None,
        timeout: float | None,
    ) -> Answer:
        headers = {
            "Authorization": authorization_header(token, plain=plain),
            "X-Request-ID": str(uuid.uuid4()),
            "X-Correlation-ID": str(uuid.uuid4()),
        }
        if routing is not None:
            (from_cc, from_pid), (to_cc, to_pid) = routing
            headers.update(
                {
                    "OCPI-from-country-code": from_cc,
                    "OCPI-from-party-id": from_pid,
                    "OCPI-to-country-code": to_cc,
                    "OCPI-to-party-id": to_pid,
                }
            )
        data: bytes | None = None
        if body is not MISSING:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        try:
            async with self.http.request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            ) as response:
                raw = await response.read()
                status = response.status
                response_headers = dict(response.headers)
        except (aiohttp.ClientError, TimeoutError) as err:
            raise PeerCallError(f"{method} {url}: {type(err).__name__} {err}".strip()) from err
        if status == 401:
            return Answer(
                http_status=401, status_code=2000, message="Unauthorized", data=None, headers=response_headers
            )
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise PeerCallError(f"{method} {url}: HTTP {status}, not JSON") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("status_code"), int):
            raise PeerCallError(f"{method} {url}: HTTP {status}, not an OCPI response")
        return Answer(
            http_status=status,
            status_code=parsed["status_code"],
            message=parsed.get("status_message"),
            data=parsed.get("data", MISSING),
            headers=response_headers,
        )

    async def _record(self, peer: Peer, summary: str, error: str | None) -> None:
        if peer.id > 0:
            await PeerRepo(self.db).record_exchange(peer.id, summary, error, self.clock())
