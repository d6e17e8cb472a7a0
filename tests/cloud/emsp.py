"""An eMSP written from the OCPI 2.2.1 specification, to test the cloud connector against.

It serves its own versions, credentials and Receiver/Sender interfaces on 127.0.0.1 (aiohttp), checks
every request the way a strict 2.2.1 eMSP would (base64 credentials token, envelope, routing headers on
functional modules), keeps what the CPO pushes, and can register with the CPO, rotate and unregister.
"""

from __future__ import annotations

import base64
import binascii
from contextvars import ContextVar
from dataclasses import dataclass, field
import json
import secrets
import socket
from typing import Any
import uuid

import aiohttp
from aiohttp import web

from cloud_connector.timeutil import format_dt, utcnow

VERSION = "2.2.1"
_BODY: ContextVar[Any] = ContextVar("emsp_body")  # the request body (aiohttp 3.12+ frowns upon str request keys)


@dataclass
class Received:
    """One request the eMSP got."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class EmspState:
    """Everything the eMSP knows."""

    token_a: str | None = None  # what we gave the CPO to register with us
    token_in: str | None = None  # token the CPO uses to call us (B or C)
    token_out: str | None = None  # token we use to call the CPO
    cpo_versions_url: str | None = None
    cpo_endpoints: dict[str, str] = field(default_factory=dict)
    cpo_roles: list[dict[str, Any]] = field(default_factory=list)
    locations: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    cdrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tariffs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # our tokens, by uid
    command_results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    profile_results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)


class Emsp:
    """The eMSP server and client."""

    def __init__(self, country_code: str = "NL", party_id: str = "EMS", *, plain_tokens: bool = False) -> None:
        self.country_code = country_code
        self.party_id = party_id
        self.plain_tokens = plain_tokens  # behave like an old 2.2 peer: tokens are not base64-encoded
        self.state = EmspState()
        self.authorize_answer: dict[str, Any] = {}  # uid -> forced AuthorizationInfo fields
        self.authorize_status: dict[str, tuple[int, int]] = {}  # uid -> forced (HTTP status, OCPI status)
        self.fail_next: list[int] = []  # HTTP statuses to answer the next pushes with
        self._runner: web.AppRunner | None = None
        self._port = 0
        self.http: aiohttp.ClientSession | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def versions_url(self) -> str:
        return f"{self.url}/ocpi/versions"

    async def start(self) -> None:
        """Serve (again, on the same port after :meth:`go_down`)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        app = web.Application(middlewares=[self._middleware])
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        if self.http is None:
            self.http = aiohttp.ClientSession()

    async def go_down(self) -> None:
        """Stop answering: connections are refused until :meth:`start`."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        await self.go_down()
        if self.http is not None:
            await self.http.close()

    async def __aenter__(self) -> Emsp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- what we tell others -----------------------------------------------------------------------

    def roles(self) -> list[dict[str, Any]]:
        return [
            {
                "role": "EMSP",
                "business_details": {"name": "Test eMSP"},
                "party_id": self.party_id,
                "country_code": self.country_code,
            }
        ]

    def credentials(self, token: str) -> dict[str, Any]:
        return {"token": token, "url": self.versions_url, "roles": self.roles()}

    def endpoints(self) -> list[dict[str, str]]:
        base = f"{self.url}/ocpi/emsp/{VERSION}"
        return [
            {"identifier": "credentials", "role": "SENDER", "url": f"{self.url}/ocpi/{VERSION}/credentials"},
            {"identifier": "locations", "role": "RECEIVER", "url": f"{base}/locations"},
            {"identifier": "sessions", "role": "RECEIVER", "url": f"{base}/sessions"},
            {"identifier": "cdrs", "role": "RECEIVER", "url": f"{base}/cdrs"},
            {"identifier": "tariffs", "role": "RECEIVER", "url": f"{base}/tariffs"},
            {"identifier": "tokens", "role": "SENDER", "url": f"{base}/tokens"},
            {"identifier": "commands", "role": "SENDER", "url": f"{base}/commands"},
            {"identifier": "chargingprofiles", "role": "SENDER", "url": f"{base}/chargingprofiles"},
        ]

    def issue_token_a(self) -> str:
        self.state.token_a = secrets.token_urlsafe(16)
        return self.state.token_a

    def add_token(self, uid: str, *, whitelist: str = "ALWAYS", valid: bool = True, **extra: Any) -> dict[str, Any]:
        token = {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "uid": uid,
            "type": "RFID",
            "contract_id": f"{self.country_code}-{self.party_id}-C{uid}",
            "issuer": "Test eMSP",
            "valid": valid,
            "whitelist": whitelist,
            "last_updated": format_dt(utcnow()),
            **extra,
        }
        self.state.tokens[uid] = token
        return token

    # --- server side -------------------------------------------------------------------------------

    def _envelope(self, data: Any = None, status: int = 1000, message: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"status_code": status, "timestamp": format_dt(utcnow())}
        if data is not None:
            body["data"] = data
        if message:
            body["status_message"] = message
        return body

    def _reply(self, data: Any = None, status: int = 1000, http: int = 200, **headers: str) -> web.Response:
        return web.json_response(self._envelope(data, status), status=http, headers=headers or None)

    def _token_of(self, request: web.Request) -> str | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Token" or not value:
            return None
        if self.plain_tokens:
            return value
        try:
            return base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = None
        if request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        self.state.received.append(Received(request.method, request.path, body, dict(request.headers)))
        token = self._token_of(request)
        allowed = {self.state.token_in, self.state.token_a} - {None}
        if token not in allowed:
            return web.json_response(self._envelope(None, 2000, "Unauthorized"), status=401)
        if (
            token == self.state.token_a
            and "/credentials" not in request.path
            and not request.path.endswith(("/versions", f"/{VERSION}"))
        ):
            return web.json_response(self._envelope(None, 2000, "token A"), status=401)
        if "/emsp/" in request.path and request.method != "GET" and self.fail_next:
            return web.json_response(self._envelope(None, 3000, "down"), status=self.fail_next.pop(0))
        _BODY.set(body)
        response: web.StreamResponse = await handler(request)
        for name in ("X-Request-ID", "X-Correlation-ID"):
            if name in request.headers:
                response.headers[name] = request.headers[name]
        return response

    def _routes(self, app: web.Application) -> None:
        base = f"/ocpi/emsp/{VERSION}"
        app.router.add_get("/ocpi/versions", self._versions)
        app.router.add_get(f"/ocpi/{VERSION}", self._details)
        app.router.add_route("*", f"/ocpi/{VERSION}/credentials", self._credentials)
        app.router.add_route("*", base + "/locations/{cc}/{pid}/{location}", self._location)
        app.router.add_route("*", base + "/locations/{cc}/{pid}/{location}/{evse}", self._location)
        app.router.add_route("*", base + "/locations/{cc}/{pid}/{location}/{evse}/{connector}", self._location)
        app.router.add_route("*", base + "/sessions/{cc}/{pid}/{session}", self._session)
        app.router.add_post(base + "/cdrs", self._cdr_post)
        app.router.add_get(base + "/cdrs/{cdr}", self._cdr_get)
        app.router.add_route("*", base + "/tariffs/{cc}/{pid}/{tariff}", self._tariff)
        app.router.add_get(base + "/tokens", self._tokens_list)
        app.router.add_post(base + "/tokens/{uid}/authorize", self._authorize)
        app.router.add_post(base + "/commands/{command}/{ref}", self._command_result)
        app.router.add_post(base + "/chargingprofiles/{ref}", self._profile_result)

    def _check_routing(self, request: web.Request) -> None:
        """Functional modules carry OCPI-to (us) and OCPI-from (a CPO role of the peer)."""
        assert request.headers.get("OCPI-to-country-code") == self.country_code, request.headers
        assert request.headers.get("OCPI-to-party-id") == self.party_id
        cpo = {(r["country_code"], r["party_id"]) for r in self.state.cpo_roles}
        assert (request.headers.get("OCPI-from-country-code"), request.headers.get("OCPI-from-party-id")) in cpo

    async def _versions(self, request: web.Request) -> web.Response:
        return self._reply(
            [
                {"version": "2.1.1", "url": f"{self.url}/ocpi/2.1.1"},
                {"version": VERSION, "url": f"{self.url}/ocpi/{VERSION}"},
            ]
        )

    async def _details(self, request: web.Request) -> web.Response:
        return self._reply({"version": VERSION, "endpoints": self.endpoints()})

    async def _credentials(self, request: web.Request) -> web.Response:
        token = self._token_of(request)
        registered = token == self.state.token_in and token is not None
        if request.method == "GET":
            return self._reply(self.credentials(token or ""))
        if request.method == "DELETE":
            if not registered:
                return self._reply(None, 2000, http=405)
            self.state.token_in = self.state.token_out = None
            return self._reply()
        if request.method == "POST" and registered:
            return self._reply(None, 2000, http=405)
        if request.method == "PUT" and not registered:
            return self._reply(None, 2000, http=405)
        theirs = _BODY.get()
        await self._learn_cpo(theirs["url"], theirs["token"])
        self.state.cpo_roles = theirs["roles"]
        self.state.token_out = theirs["token"]
        self.state.token_in = secrets.token_urlsafe(24)
        self.state.token_a = None
        return self._reply(self.credentials(self.state.token_in))

    async def _learn_cpo(self, versions_url: str, token: str) -> None:
        status, body, _ = await self.call("GET", versions_url, token=token)
        assert (status, body["status_code"]) == (200, 1000), body
        url = next(v["url"] for v in body["data"] if v["version"] == VERSION)
        status, body, _ = await self.call("GET", url, token=token)
        assert (status, body["status_code"]) == (200, 1000), body
        self.state.cpo_versions_url = versions_url
        self.state.cpo_endpoints = {e["identifier"]: e["url"] for e in body["data"]["endpoints"]}

    async def _location(self, request: web.Request) -> web.Response:
        self._check_routing(request)
        m = request.match_info
        key = m["location"]
        body = _BODY.get()
        location = self.state.locations.get(key)
        target: dict[str, Any] | None = location
        if "evse" in m and location is not None:
            target = next((e for e in location.get("evses", []) if e["uid"] == m["evse"]), None)
            if "connector" in m and target is not None:
                target = next((c for c in target["connectors"] if c["id"] == m["connector"]), None)
        if request.method == "GET":
            return self._reply(target) if target is not None else self._reply(None, 2003, http=404)
        if request.method == "PUT":
            if "evse" not in m:
                assert (body["id"], body["country_code"], body["party_id"]) == (key, m["cc"], m["pid"])
                self.state.locations[key] = body
                return self._reply()
            if location is None:
                return self._reply(None, 2003, http=404)
            if "connector" in m:
                evse = next(e for e in location["evses"] if e["uid"] == m["evse"])
                evse["connectors"] = [c for c in evse["connectors"] if c["id"] != m["connector"]] + [body]
                evse["last_updated"] = body["last_updated"]
            else:
                location["evses"] = [e for e in location.get("evses", []) if e["uid"] != m["evse"]] + [body]
            location["last_updated"] = body["last_updated"]
            return self._reply()
        assert request.method == "PATCH"
        assert "last_updated" in body
        if target is None:
            return self._reply(None, 2003, http=404)
        target.update(body)
        if location is not None and target is not location:
            location["last_updated"] = body["last_updated"]
        return self._reply()

    async def _session(self, request: web.Request) -> web.Response:
        self._check_routing(request)
        key = request.match_info["session"]
        body = _BODY.get()
        if request.method == "GET":
            found = self.state.sessions.get(key)
            return self._reply(found) if found else self._reply(None, 2000, http=404)
        if request.method == "PUT":
            assert body["id"] == key
            self.state.sessions[key] = body
            return self._reply()
        assert request.method == "PATCH"
        assert "last_updated" in body
        if key not in self.state.sessions:
            return self._reply(None, 2000, http=404)
        session = self.state.sessions[key]
        periods = body.pop("charging_periods", None) or []
        session.update(body)
        session.setdefault("charging_periods", []).extend(periods)
        return self._reply()

    async def _cdr_post(self, request: web.Request) -> web.Response:
        self._check_routing(request)
        body = _BODY.get()
        self.state.cdrs[body["id"]] = body
        return self._reply(http=201, Location=f"{self.url}/ocpi/emsp/{VERSION}/cdrs/{body['id']}")

    async def _cdr_get(self, request: web.Request) -> web.Response:
        found = self.state.cdrs.get(request.match_info["cdr"])
        return self._reply(found) if found else self._reply(None, 2000, http=404)

    async def _tariff(self, request: web.Request) -> web.Response:
        self._check_routing(request)
        key = request.match_info["tariff"]
        if request.method == "PUT":
            self.state.tariffs[key] = _BODY.get()
            return self._reply()
        if request.method == "DELETE":
            self.state.tariffs.pop(key, None)
            return self._reply()
        found = self.state.tariffs.get(key)
        return self._reply(found) if found else self._reply(None, 2000, http=404)

    async def _tokens_list(self, request: web.Request) -> web.Response:
        return self._reply(list(self.state.tokens.values()))

    async def _authorize(self, request: web.Request) -> web.Response:
        self._check_routing(request)
        uid = request.match_info["uid"]
        if uid in self.authorize_status:
            http, code = self.authorize_status[uid]
            return self._reply(None, code, http=http)
        token = self.state.tokens.get(uid)
        if token is None:
            return self._reply(None, 2004, http=404)
        info: dict[str, Any] = {
            "allowed": "ALLOWED" if token["valid"] else "BLOCKED",
            "token": token,
            "authorization_reference": f"ref-{uuid.uuid4().hex[:8]}",
        }
        if _BODY.get():
            info["location"] = _BODY.get()
        info.update(self.authorize_answer.get(uid, {}))
        return self._reply(info)

    async def _command_result(self, request: web.Request) -> web.Response:
        self.state.command_results.setdefault(request.match_info["ref"], []).append(_BODY.get())
        return self._reply()

    async def _profile_result(self, request: web.Request) -> web.Response:
        self.state.profile_results.setdefault(request.match_info["ref"], []).append(_BODY.get())
        return self._reply()

    # --- client side -------------------------------------------------------------------------------

    async def call(
        self, method: str, url: str, *, token: str | None = None, body: Any = None, routed: bool = False
    ) -> tuple[int, Any, dict[str, str]]:
        """A request to the CPO; ``routed`` adds OCPI-from (us) / OCPI-to (the CPO's first role)."""
        assert self.http is not None
        credential = token if token is not None else self.state.token_out
        assert credential is not None
        encoded = credential if self.plain_tokens else base64.b64encode(credential.encode()).decode()
        headers = {
            "Authorization": f"Token {encoded}",
            "X-Request-ID": str(uuid.uuid4()),
            "X-Correlation-ID": str(uuid.uuid4()),
        }
        if routed and self.state.cpo_roles:
            headers.update(
                {
                    "OCPI-from-country-code": self.country_code,
                    "OCPI-from-party-id": self.party_id,
                    "OCPI-to-country-code": self.state.cpo_roles[0]["country_code"],
                    "OCPI-to-party-id": self.state.cpo_roles[0]["party_id"],
                }
            )
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.http.request(method, url, data=data, headers=headers) as response:
            raw = await response.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            return response.status, parsed, dict(response.headers)

    async def module(
        self, method: str, module: str, suffix: str = "", body: Any = None
    ) -> tuple[int, Any, dict[str, str]]:
        """Call one of the CPO's modules (as learnt from its version details)."""
        return await self.call(method, self.state.cpo_endpoints[module] + suffix, body=body, routed=True)

    async def register(self, versions_url: str, token_a: str) -> dict[str, Any]:
        """We are the Sender: fetch the CPO's versions with token A, POST our credentials with token B."""
        await self._learn_cpo(versions_url, token_a)
        self.state.token_in = secrets.token_urlsafe(24)
        status, body, _ = await self.call(
            "POST", self.state.cpo_endpoints["credentials"], token=token_a, body=self.credentials(self.state.token_in)
        )
        assert (status, body["status_code"]) == (200, 1000), body
        self.state.token_out = body["data"]["token"]
        self.state.cpo_roles = body["data"]["roles"]
        return dict(body["data"])

    async def rotate(self) -> dict[str, Any]:
        """PUT new credentials: a new token for the CPO to call us, a new token for us in the answer."""
        self.state.token_in = secrets.token_urlsafe(24)  # the CPO fetches our endpoints with it at once
        status, body, _ = await self.call(
            "PUT", self.state.cpo_endpoints["credentials"], body=self.credentials(self.state.token_in)
        )
        assert status == 200, body
        assert body["status_code"] == 1000, body
        self.state.token_out = body["data"]["token"]
        return dict(body["data"])

    async def unregister(self) -> tuple[int, Any]:
        status, body, _ = await self.call("DELETE", self.state.cpo_endpoints["credentials"])
        return status, body
