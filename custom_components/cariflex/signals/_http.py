"""One JSON request over the caller's aiohttp session, every failure mapped to a signal error."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import json
import math
from typing import Any

import aiohttp
from yarl import URL

from .errors import (
    SignalAuthError,
    SignalConfigError,
    SignalConnectionError,
    SignalRateLimitError,
    SignalResponseError,
)

DEFAULT_TIMEOUT = 15.0
"""Seconds a request may take, connection included."""

_DETAIL_CHARS = 200


@dataclass(frozen=True, slots=True)
class JsonResponse:
    """A successful (2xx) answer whose body is valid JSON."""

    status: int
    headers: Mapping[str, str]
    body: Any


def _error_fields(body: Any) -> tuple[str, str | None]:
    """The human message and the machine code of an error body (Opendatasoft, RTE or OAuth2 shapes)."""
    if not isinstance(body, dict):
        return "", None
    message = next(
        (
            body[key]
            for key in ("message", "error_description", "error")
            if isinstance(body.get(key), str) and body[key]
        ),
        "",
    )
    code = next((body[key] for key in ("error_code", "errorcode", "error") if body.get(key) not in (None, "")), None)
    return str(message)[:_DETAIL_CHARS], None if code is None else str(code)


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The ``Retry-After`` header when it is a number of seconds (an HTTP date needs a clock: ignored)."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


async def request_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str | URL,
    *,
    source: str,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    data: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> JsonResponse:
    """Send one request and return its JSON body; ``source`` prefixes every error message.

    Raises :class:`SignalConnectionError` (unreachable, timeout), :class:`SignalAuthError`
    (401/403), :class:`SignalRateLimitError` (429), :class:`SignalResponseError` (any other
    non-2xx status, or a 2xx body that is not JSON).
    """
    host = URL(url).host or str(url)
    try:
        async with session.request(
            method, url, params=params, headers=headers, data=data, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as response:
            raw = await response.read()
            status = response.status
            response_headers = dict(response.headers)
    except TimeoutError as err:
        raise SignalConnectionError(f"{source}: no answer from {host} within {timeout:g} s") from err
    except aiohttp.ClientError as err:
        raise SignalConnectionError(f"{source}: cannot reach {host}: {err or type(err).__name__}") from err

    try:
        body: Any = json.loads(raw.decode("utf-8"))
        valid = True
    except (UnicodeDecodeError, ValueError):
        body, valid = None, False

    message, code = _error_fields(body)
    detail = f": {message}" if message else ""
    if status in (401, 403):
        raise SignalAuthError(
            f"{source}: credentials refused (HTTP {status}){detail}", status=status, code=code, body=body
        )
    if status == 429:
        retry_after = retry_after_seconds(response_headers)
        wait = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
        raise SignalRateLimitError(
            f"{source}: too many requests (HTTP 429){wait}{detail}", code=code, body=body, retry_after=retry_after
        )
    if not 200 <= status < 300:
        raise SignalResponseError(f"{source}: HTTP {status} from {host}{detail}", status=status, code=code, body=body)
    if not valid:
        raise SignalResponseError(f"{source}: the answer from {host} is not valid JSON", status=status)
    return JsonResponse(status=status, headers=response_headers, body=body)


def validate_base_url(value: object, *, field: str = "base_url") -> URL:
    """An ``http(s)://host[/path]`` URL without query or fragment."""
    if not isinstance(value, str) or not value.strip():
        raise SignalConfigError(f"{field} must be an http(s) URL, not {value!r}", field=field)
    try:
        url = URL(value.strip())
    except ValueError as err:
        raise SignalConfigError(f"{field} is not a valid URL: {value!r}", field=field) from err
    if url.scheme not in ("http", "https") or not url.host or url.query_string or url.fragment:
        raise SignalConfigError(
            f"{field} must look like https://host[/path] (no query, no fragment), not {value!r}", field=field
        )
    return url


def join_url(base: URL, path: str) -> URL:
    """``path`` (starting with ``/``) under the path of ``base``."""
    return base.with_path(base.path.rstrip("/") + path)


def validate_secret(value: object, *, field: str) -> str:
    """A non-empty credential without blanks; the message never repeats it."""
    if not isinstance(value, str) or not value or value != value.strip() or any(ch.isspace() for ch in value):
        raise SignalConfigError(f"{field} must be a non-empty string without spaces", field=field)
    return value
