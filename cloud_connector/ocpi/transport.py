"""OCPI transport: the response envelope, status codes, credentials-token authentication, routing and
request-id headers, pagination."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
import json
import logging
from typing import Any, Final
from urllib.parse import urlencode
import uuid

from aiohttp import web

from ..timeutil import format_dt, parse_dt
from .schema import Invalid

_LOGGER = logging.getLogger(__name__)

MISSING: Final = object()
JSON_TYPE = "application/json"

# Modules whose requests are not routed (no OCPI-to/from headers) and which token A may use.
TOKEN_A = "A"  # noqa: S105 - the kind of a registration token (repo.peers.TOKEN_A)
CONFIGURATION_MODULES = frozenset({"versions", "credentials", "hubclientinfo"})
TOKEN_A_MODULES = frozenset({"versions", "credentials"})


class Status(IntEnum):
    """OCPI status codes (status_codes.asciidoc)."""

    SUCCESS = 1000
    CLIENT_ERROR = 2000
    INVALID_PARAMETERS = 2001
    NOT_ENOUGH_INFORMATION = 2002
    UNKNOWN_LOCATION = 2003
    UNKNOWN_TOKEN = 2004
    SERVER_ERROR = 3000
    CLIENT_API_UNUSABLE = 3001
    UNSUPPORTED_VERSION = 3002
    NO_MATCHING_ENDPOINTS = 3003


class OcpiError(Exception):
    """Ends a request with an OCPI status code (and the HTTP status that goes with it)."""

    def __init__(self, status: Status, message: str, *, http_status: int = 200, data: Any = MISSING) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.http_status = http_status
        self.data = data


def invalid(err: Invalid) -> OcpiError:
    """2001 for an object that does not match its definition (the JSON itself was fine: HTTP 200)."""
    return OcpiError(Status.INVALID_PARAMETERS, str(err))


def envelope(
    now: datetime, data: Any = MISSING, status: int = Status.SUCCESS, message: str | None = None
) -> dict[str, Any]:
    """``{data, status_code, status_message, timestamp}``; ``data`` left out when MISSING."""
    body: dict[str, Any] = {}
    if data is not MISSING:
        body["data"] = data
    body["status_code"] = int(status)
    if message is not None:
        body["status_message"] = message
    body["timestamp"] = format_dt(now)
    return body


@dataclass(kw_only=True)
class RequestInfo:
    """What the middleware learnt about a request: who sent it and on which module."""

    module: str
    peer: Any = None  # repo.peers.Peer once authenticated
    token_kind: str | None = None
    token: str | None = None


# The request being handled (one task per request in aiohttp: a context variable is per request, and
# needs neither aiohttp 3.11 string keys nor 3.12+ RequestKey).
_CURRENT: ContextVar[RequestInfo] = ContextVar("cariflex_ocpi_request")


def module_of(request: web.Request) -> str | None:
    """Route names are ``ocpi.<module>.<action>``; None for non-OCPI routes."""
    name = request.match_info.route.name
    if name and name.startswith("ocpi."):
        return name.split(".")[1]
    if request.path.startswith("/ocpi/"):
        return "unknown"
    return None


def token_candidates(header: str | None) -> list[tuple[str, str]]:
    """Tokens an ``Authorization: Token ...`` header may carry: base64-decoded (2.2.1) first, then as sent."""
    if not header:
        return []
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value:
        return []
    found: list[tuple[str, str]] = []
    try:
        decoded = base64.b64decode(value, validate=True).decode("ascii").strip()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    if decoded and all("!" <= ch <= "~" for ch in decoded):
        found.append((decoded, "base64"))
    found.append((value, "plain"))
    return found


def authorization_header(token: str, *, plain: bool = False) -> str:
    """What we send: base64 as 2.2.1 requires, or plain for peers that insist."""
    return f"Token {token if plain else base64.b64encode(token.encode()).decode()}"


type Authenticator = Callable[[str], Awaitable[tuple[Any, str] | None]]


def make_middleware(
    authenticate: Authenticator,
    our_party: Callable[[], Awaitable[tuple[str, str] | None]],
    clock: Callable[[], datetime],
) -> Callable[..., Any]:
    """The OCPI middleware: authentication, envelope for errors, id and routing headers."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        module = module_of(request)
        if module is None:
            return await handler(request)
        request_id = request.headers.get("X-Request-ID") or str(uuid.uuid4())
        correlation_id = request.headers.get("X-Correlation-ID") or str(uuid.uuid4())
        info = RequestInfo(module=module)
        _CURRENT.set(info)
        try:
            response = await _authenticated(request, handler, info, authenticate)
        except OcpiError as err:
            response = web.json_response(envelope(clock(), err.data, err.status, err.message), status=err.http_status)
        except web.HTTPException as err:
            if err.status >= 500:  # pragma: no cover - aiohttp raises none of these itself
                raise
            response = web.json_response(envelope(clock(), MISSING, Status.CLIENT_ERROR, err.reason), status=err.status)
            if err.status == 405 and "Allow" in err.headers:
                response.headers["Allow"] = err.headers["Allow"]
        except Exception:
            _LOGGER.exception("OCPI request failed", extra={"path": request.path, "request_id": request_id})
            response = web.json_response(envelope(clock(), MISSING, Status.SERVER_ERROR, "internal error"), status=500)
        response.headers["X-Request-ID"] = request_id
        response.headers["X-Correlation-ID"] = correlation_id
        _LOGGER.info(
            "%s %s -> %s",
            request.method,
            request.path,
            response.status,
            extra={
                "peer": getattr(info.peer, "id", None),
                "ocpi_module": info.module,
                "request_id": request_id,
                "correlation_id": correlation_id,
            },
        )
        if info.module not in CONFIGURATION_MODULES and info.peer is not None:
            _routing_headers(request, response, info, await our_party())
        return response

    return middleware


async def _authenticated(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    info: RequestInfo,
    authenticate: Authenticator,
) -> web.StreamResponse:
    header = request.headers.get("Authorization")
    for token, form in token_candidates(header):
        found = await authenticate(token)
        if found is not None:
            info.peer, info.token_kind = found
            info.token = token
            _LOGGER.debug(
                "Authenticated peer %s (%s token, %s header)",
                info.peer.id,
                info.token_kind,
                form,
                extra={"peer": info.peer.id, "auth_header": form},
            )
            break
    else:
        raise OcpiError(Status.CLIENT_ERROR, "Unauthorized", http_status=401)
    if info.token_kind == TOKEN_A and info.module not in TOKEN_A_MODULES and request.match_info.http_exception is None:
        # transport_and_format: token A on any other module than credentials or versions -> 401.
        raise OcpiError(Status.CLIENT_ERROR, "Unauthorized: registration token", http_status=401)
    return await handler(request)


def _routing_headers(
    request: web.Request, response: web.StreamResponse, info: RequestInfo, ours: tuple[str, str] | None
) -> None:
    """A response goes back to whoever sent the request: swap the request's to/from headers."""
    theirs = info.peer.parties()
    from_cc = request.headers.get("OCPI-to-country-code") or (ours[0] if ours else None)
    from_pid = request.headers.get("OCPI-to-party-id") or (ours[1] if ours else None)
    to_cc = request.headers.get("OCPI-from-country-code") or (theirs[0][0] if theirs else None)
    to_pid = request.headers.get("OCPI-from-party-id") or (theirs[0][1] if theirs else None)
    for name, value in (
        ("OCPI-from-country-code", from_cc),
        ("OCPI-from-party-id", from_pid),
        ("OCPI-to-country-code", to_cc),
        ("OCPI-to-party-id", to_pid),
    ):
        if value:
            response.headers[name] = value


def request_info() -> RequestInfo:
    """What the middleware learnt about the request being handled."""
    return _CURRENT.get()


async def json_body(request: web.Request) -> Any:
    """The parsed body; HTTP 400 when it is not JSON (status_codes: the transport layer)."""
    raw = await request.read()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise OcpiError(Status.CLIENT_ERROR, "request body is not valid JSON", http_status=400) from None


def reply(
    now: datetime,
    data: Any = MISSING,
    *,
    status: int = Status.SUCCESS,
    message: str | None = None,
    http_status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(envelope(now, data, status, message), status=http_status, headers=headers)


@dataclass(frozen=True, kw_only=True)
class Page:
    """A paginated GET's parameters."""

    offset: int
    limit: int
    date_from: datetime | None
    date_to: datetime | None


def parse_page(request: web.Request, max_limit: int) -> Page:
    """offset, limit (capped at the server maximum), date_from, date_to; 2001 for bad values."""
    query = request.query

    def integer(name: str, default: int) -> int:
        text = query.get(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise OcpiError(Status.INVALID_PARAMETERS, f"{name} must be an integer") from None
        if value < 0:
            raise OcpiError(Status.INVALID_PARAMETERS, f"{name} must not be negative")
        return value

    def moment(name: str) -> datetime | None:
        text = query.get(name)
        if not text:
            return None
        try:
            return parse_dt(text)
        except ValueError:
            raise OcpiError(Status.INVALID_PARAMETERS, f"{name} is not a DateTime") from None

    offset = integer("offset", 0)
    limit = min(integer("limit", max_limit), max_limit)
    return Page(offset=offset, limit=limit, date_from=moment("date_from"), date_to=moment("date_to"))


def paginated(
    now: datetime,
    request: web.Request,
    items: Sequence[Any],
    *,
    public_url: str,
    total: int,
    page: Page,
    max_limit: int,
) -> web.Response:
    """A list response with Link (next page), X-Total-Count and X-Limit."""
    headers = _page_headers(request, len(items), public_url=public_url, total=total, page=page, max_limit=max_limit)
    return reply(now, list(items), headers=headers)


def paginated_json(
    now: datetime,
    request: web.Request,
    texts: Sequence[str],
    *,
    public_url: str,
    total: int,
    page: Page,
    max_limit: int,
) -> web.Response:
    """:func:`paginated` for items already serialized (``json.dumps`` of each): the same bytes."""
    headers = _page_headers(request, len(texts), public_url=public_url, total=total, page=page, max_limit=max_limit)
    empty = json.dumps(envelope(now, []))
    head = '{"data": []'
    assert empty.startswith(head)
    body = '{"data": [' + ", ".join(texts) + "]" + empty[len(head) :]
    return web.Response(text=body, content_type=JSON_TYPE, headers=headers)


def _page_headers(
    request: web.Request, count: int, *, public_url: str, total: int, page: Page, max_limit: int
) -> dict[str, str]:
    headers = {"X-Total-Count": str(total), "X-Limit": str(max_limit)}
    following = page.offset + count
    if count and following < total:
        params: dict[str, str] = {"offset": str(following), "limit": str(page.limit)}
        for name in ("date_from", "date_to"):
            if request.query.get(name):
                params[name] = request.query[name]
        headers["Link"] = f'<{public_url}{request.path}?{urlencode(params)}>; rel="next"'
    return headers
