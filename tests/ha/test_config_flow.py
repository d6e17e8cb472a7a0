"""Config flow: the site (user, reconfigure, options), charger sub-entries and discovery of unknown chargers."""

from __future__ import annotations

from collections.abc import Iterator
import errno
from pathlib import Path
import socket
import ssl
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import config_validation as cv
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import websockets
from websockets.exceptions import InvalidStatus

from custom_components.cariflex import config_flow
from custom_components.cariflex.const import (
    CONF_AUTH_MODE,
    CONF_CERTFILE,
    CONF_CHARGER_ID,
    CONF_HEARTBEAT_INTERVAL,
    CONF_KEYFILE,
    CONF_MAX_CURRENT,
    CONF_PASSWORD,
    CONF_PASSWORD_HASH,
    CONF_PHASES,
    CONF_SITE_NAME,
    CONF_SUBSCRIBED_POWER,
    CONF_UNKNOWN_CHARGERS,
    CONF_VOLTAGE,
    CONF_WS_PORT,
    CONF_WSS_PORT,
    DOMAIN,
    SUBENTRY_CHARGER,
)
from custom_components.cariflex.ocpp.site import UnknownChargerPolicy, verify_password
from custom_components.cariflex.runtime import CariflexRuntime
from simulator.charger16 import connect
from tests.conftest import ChargerFactory, free_port, site_entry, state_of, wait_for
from tests.tls import self_signed_cert

pytestmark = pytest.mark.usefixtures("socket_enabled")

SITE_OPTIONS: dict[str, Any] = {
    CONF_UNKNOWN_CHARGERS: "accept",
    CONF_AUTH_MODE: "open",
    CONF_PHASES: "3",
    CONF_VOLTAGE: 230,
    CONF_SUBSCRIBED_POWER: 36.0,
    CONF_HEARTBEAT_INTERVAL: 300,
}


# ---------------------------------------------------------------------- helpers
@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port some other program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1: (certfile, keyfile, client context trusting it)."""
    certfile, keyfile = self_signed_cert(tmp_path)
    client = ssl.create_default_context(cafile=str(certfile))
    return str(certfile), str(keyfile), client


def form_defaults(result: Any) -> dict[str, Any]:
    """The default of every field of a form result."""
    return {str(key): key.default() for key in result["data_schema"].schema if callable(key.default)}


def site_input(ws_port: int, **extra: Any) -> dict[str, Any]:
    """What a user types in the site form (wss port 0: no TLS)."""
    return {CONF_SITE_NAME: "Home", CONF_WS_PORT: ws_port, CONF_WSS_PORT: 0, **SITE_OPTIONS, **extra}


async def start_user_flow(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": "user"})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    return str(result["flow_id"])


async def only_entry(hass: HomeAssistant) -> ConfigEntry:
    entries = hass.config_entries.async_entries(DOMAIN)
    assert len(entries) == 1
    await hass.async_block_till_done()
    return entries[0]


async def refused_status(url: str) -> int:
    """The HTTP status a websocket upgrade to ``url`` is refused with (fails if it is accepted)."""
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, subprotocols=["ocpp1.6"], open_timeout=3):  # type: ignore[list-item]
            pass
    return int(refused.value.response.status_code)


async def can_boot(url: str, charger_id: str, ssl_context: ssl.SSLContext | None = None, **kwargs: Any) -> str:
    """Connect a charger to ``url``, boot it, disconnect; the boot status."""
    charger, ws, task = await connect(url, charger_id, ssl_context=ssl_context, **kwargs)
    try:
        status = str((await charger.boot()).status)
        if status == "Accepted":
            # Let the site finish its after-boot questions before hanging up.
            await wait_for(lambda: any(action == "GetConfiguration" for action, _ in charger.received))
        return status
    finally:
        task.cancel()
        await ws.close()


# ---------------------------------------------------------------------- user step
async def test_user_step_creates_a_site_with_data_and_options_split(hass: HomeAssistant) -> None:
    flow_id = await start_user_flow(hass)
    port = free_port()
    result = await hass.config_entries.flow.async_configure(flow_id, site_input(port, **{CONF_UNKNOWN_CHARGERS: "ask"}))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Home"
    entry = await only_entry(hass)
    assert dict(entry.data) == {CONF_SITE_NAME: "Home", CONF_WS_PORT: port, CONF_WSS_PORT: 0}
    assert dict(entry.options) == {
        CONF_UNKNOWN_CHARGERS: "ask",
        CONF_AUTH_MODE: "open",
        CONF_PHASES: 3,  # the selector gives a string, the site wants a number
        CONF_VOLTAGE: 230,
        CONF_SUBSCRIBED_POWER: 36.0,
        CONF_HEARTBEAT_INTERVAL: 300,
    }
    assert entry.state is ConfigEntryState.LOADED
    assert entry.runtime_data.backend.policy is UnknownChargerPolicy.ASK
    # The site listens on its port: an unknown charger is held Pending (policy "ask").
    assert await can_boot(f"ws://127.0.0.1:{port}", "NEW1") == "Pending"


async def test_port_in_use_then_recovery(hass: HomeAssistant, listening_port: int) -> None:
    flow_id = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, site_input(listening_port))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_WS_PORT: "port_in_use"}
    # The form keeps what the user typed.
    schema_defaults = form_defaults(result)
    assert schema_defaults[CONF_WS_PORT] == listening_port
    assert schema_defaults[CONF_SITE_NAME] == "Home"

    port = free_port()
    result = await hass.config_entries.flow.async_configure(flow_id, site_input(port))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert (await only_entry(hass)).data[CONF_WS_PORT] == port


async def test_port_of_another_site_is_in_use_even_when_that_site_is_not_running(hass: HomeAssistant) -> None:
    port = free_port()
    other = site_entry(port)
    other.add_to_hass(hass)  # not set up: the port is free on the host, but promised to that site
    flow_id = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, site_input(port))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_WS_PORT: "port_in_use"}


async def test_same_port_for_ws_and_wss_then_recovery(
    hass: HomeAssistant, certificate: tuple[str, str, ssl.SSLContext]
) -> None:
    certfile, keyfile, client = certificate
    port = free_port()
    flow_id = await start_user_flow(hass)
    tls = {CONF_CERTFILE: certfile, CONF_KEYFILE: keyfile}
    result = await hass.config_entries.flow.async_configure(flow_id, site_input(port, **tls, **{CONF_WSS_PORT: port}))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_WSS_PORT: "same_port"}

    tls_port = free_port()
    result = await hass.config_entries.flow.async_configure(
        flow_id, site_input(port, **tls, **{CONF_WSS_PORT: tls_port})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = await only_entry(hass)
    assert entry.data[CONF_WSS_PORT] == tls_port
    assert entry.data[CONF_CERTFILE] == certfile
    assert entry.data[CONF_KEYFILE] == keyfile
    # Both ports serve chargers; the secure one with the given certificate.
    assert await can_boot(f"wss://127.0.0.1:{tls_port}", "TLS1", ssl_context=client) == "Accepted"
    assert await can_boot(f"ws://127.0.0.1:{port}", "PLAIN1") == "Accepted"


async def test_no_port_then_recovery(hass: HomeAssistant) -> None:
    flow_id = await start_user_flow(hass)
    # A wss port without a certificate is not opened: nothing would listen.
    result = await hass.config_entries.flow.async_configure(flow_id, site_input(0, **{CONF_WSS_PORT: free_port()}))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "no_port"}
    result = await hass.config_entries.flow.async_configure(flow_id, site_input(free_port()))
    assert result["type"] is FlowResultType.CREATE_ENTRY


@pytest.mark.parametrize("content", [None, b"not a certificate\n"], ids=["missing", "garbage"])
async def test_unreadable_certificate_then_recovery(
    hass: HomeAssistant, tmp_path: Path, certificate: tuple[str, str, ssl.SSLContext], content: bytes | None
) -> None:
    bad = tmp_path / "bad.pem"
    if content is not None:
        bad.write_bytes(content)
    port, tls_port = free_port(), free_port()
    flow_id = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id, site_input(port, **{CONF_WSS_PORT: tls_port, CONF_CERTFILE: str(bad)})
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CERTFILE: "invalid_certificate"}
    assert hass.config_entries.async_entries(DOMAIN) == []

    certfile, keyfile, client = certificate
    result = await hass.config_entries.flow.async_configure(
        flow_id, site_input(port, **{CONF_WSS_PORT: tls_port, CONF_CERTFILE: certfile, CONF_KEYFILE: keyfile})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await only_entry(hass)
    assert await can_boot(f"wss://127.0.0.1:{tls_port}", "TLS1", ssl_context=client) == "Accepted"


async def test_certificate_key_mismatch_is_invalid(
    hass: HomeAssistant, tmp_path: Path, certificate: tuple[str, str, ssl.SSLContext]
) -> None:
    certfile, _keyfile, _client = certificate
    other_key = tmp_path / "other-key.pem"
    other_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    flow_id = await start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        flow_id,
        site_input(free_port(), **{CONF_WSS_PORT: free_port(), CONF_CERTFILE: certfile, CONF_KEYFILE: str(other_key)}),
    )
    assert result["errors"] == {CONF_CERTFILE: "invalid_certificate"}


def test_port_check_reports_other_socket_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only 'in use' and 'not allowed' mean the port is taken; other failures are not hidden."""

    class NoFiles(socket.socket):
        def bind(self, address: Any) -> None:
            raise OSError(errno.EMFILE, "Too many open files")

    port = free_port()
    monkeypatch.setattr(socket, "socket", NoFiles)
    with pytest.raises(OSError, match="Too many open files"):
        config_flow._port_free(port)


def test_port_check_on_a_free_and_a_busy_port(listening_port: int) -> None:
    assert config_flow._port_free(free_port()) is True
    assert config_flow._port_free(listening_port) is False


# ---------------------------------------------------------------------- reconfigure
async def start_reconfigure(hass: HomeAssistant, entry: ConfigEntry) -> str:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": "reconfigure", "entry_id": entry.entry_id}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    assert result["description_placeholders"] == {"site": entry.title}
    return str(result["flow_id"])


# aiohttp 3.11 (the Home Assistant 2025.4 track) re-arms a websocket's heartbeat timer in receive()
# when close() comes from another task, as the site's stop does for a connected charger: the timer
# (a no-op on a closed socket) may outlive the test. aiohttp 3.14 (2026.10 track) no longer does.
@pytest.mark.parametrize("expected_lingering_timers", [True])
async def test_reconfigure_changes_ports_and_reloads(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory, ws_port: int
) -> None:
    old_runtime = site.runtime_data
    await chargers("CP1")
    await hass.async_block_till_done()
    assert state_of(hass, "binary_sensor.cp1_connected") == "on"

    new_port = free_port()
    flow_id = await start_reconfigure(hass, site)
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_WS_PORT: new_port, CONF_WSS_PORT: 0})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert site.data[CONF_WS_PORT] == new_port
    assert site.data[CONF_SITE_NAME] == "Test site"  # untouched
    assert site.state is ConfigEntryState.LOADED
    assert site.runtime_data is not old_runtime  # reloaded
    # The old port is closed (the charger there was dropped), the new one serves chargers.
    await wait_for(lambda: state_of(hass, "binary_sensor.cp1_connected") == "off")
    with pytest.raises(ConnectionRefusedError):
        await can_boot(f"ws://127.0.0.1:{ws_port}", "CP1")
    assert await can_boot(f"ws://127.0.0.1:{new_port}", "CP1") == "Accepted"


async def test_reconfigure_restarts_the_site_once(
    hass: HomeAssistant, site: MockConfigEntry, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts: list[object] = []
    start = CariflexRuntime.async_start

    async def counted_start(runtime: CariflexRuntime) -> None:
        starts.append(runtime)
        await start(runtime)

    monkeypatch.setattr(CariflexRuntime, "async_start", counted_start)
    flow_id = await start_reconfigure(hass, site)
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_WS_PORT: free_port(), CONF_WSS_PORT: 0})
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert len(starts) == 1


async def test_reconfigure_may_keep_its_own_ports(hass: HomeAssistant, site: MockConfigEntry, ws_port: int) -> None:
    """The site's own ports are bound by itself: they are not 'in use' for it."""
    flow_id = await start_reconfigure(hass, site)
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_WS_PORT: ws_port, CONF_WSS_PORT: 0})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert site.state is ConfigEntryState.LOADED
    assert await can_boot(f"ws://127.0.0.1:{ws_port}", "CP1") == "Accepted"


async def test_reconfigure_errors_then_recovery(hass: HomeAssistant, site: MockConfigEntry, ws_port: int) -> None:
    other_port = free_port()
    site_entry(other_port).add_to_hass(hass)  # another site (not running) owns this port
    flow_id = await start_reconfigure(hass, site)
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_WS_PORT: other_port, CONF_WSS_PORT: 0})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_WS_PORT: "port_in_use"}
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_WS_PORT: 0, CONF_WSS_PORT: 0})
    assert result["errors"] == {"base": "no_port"}
    assert site.data[CONF_WS_PORT] == ws_port  # nothing changed yet

    new_port = free_port()
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_WS_PORT: new_port, CONF_WSS_PORT: 0})
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert site.data[CONF_WS_PORT] == new_port


async def test_reconfigure_adds_tls(
    hass: HomeAssistant, site: MockConfigEntry, ws_port: int, certificate: tuple[str, str, ssl.SSLContext]
) -> None:
    certfile, keyfile, client = certificate
    tls_port = free_port()
    flow_id = await start_reconfigure(hass, site)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_WS_PORT: ws_port, CONF_WSS_PORT: tls_port, CONF_CERTFILE: certfile, CONF_KEYFILE: keyfile}
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert site.state is ConfigEntryState.LOADED
    assert await can_boot(f"wss://127.0.0.1:{tls_port}", "CP1", ssl_context=client) == "Accepted"


async def test_reconfigure_can_remove_tls(
    hass: HomeAssistant, ws_port: int, certificate: tuple[str, str, ssl.SSLContext]
) -> None:
    certfile, keyfile, _client = certificate
    tls_port = free_port()
    entry = site_entry(ws_port, data={CONF_WSS_PORT: tls_port, CONF_CERTFILE: certfile, CONF_KEYFILE: keyfile})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    flow_id = await start_reconfigure(hass, entry)
    # The user empties the certificate and key fields: the form no longer sends them.
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_WS_PORT: ws_port, CONF_WSS_PORT: tls_port})
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert CONF_CERTFILE not in entry.data
    assert CONF_KEYFILE not in entry.data


# ---------------------------------------------------------------------- options
async def test_options_flow_stores_values_and_reloads_with_new_policy(
    hass: HomeAssistant, site: MockConfigEntry, ws_port: int
) -> None:
    old_runtime = site.runtime_data
    result = await hass.config_entries.options.async_init(site.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["site", "pv", "zni", "tariffs", "cloud"]
    result = await hass.config_entries.options.async_configure(result["flow_id"], {"next_step_id": "site"})
    assert result["step_id"] == "site"
    defaults = form_defaults(result)
    assert defaults[CONF_UNKNOWN_CHARGERS] == "accept"
    assert defaults[CONF_PHASES] == "3"

    new = {
        CONF_UNKNOWN_CHARGERS: "refuse",
        CONF_AUTH_MODE: "list",
        CONF_PHASES: "1",
        CONF_VOLTAGE: 240,
        CONF_SUBSCRIBED_POWER: 9.0,
        CONF_HEARTBEAT_INTERVAL: 60,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], new)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    # The energy manager's settings take their defaults (no meter, equal share).
    assert dict(site.options) == {
        **new,
        CONF_PHASES: 1,
        "meter_fallback_w": 0.0,
        "ems_strategy": "equal",
        "ems_cycle_s": 5,
        "battery_for_ev": False,
    }
    assert site.data[CONF_WS_PORT] == ws_port  # options never touch the data
    assert site.state is ConfigEntryState.LOADED
    runtime = site.runtime_data
    assert runtime is not old_runtime
    assert runtime.backend.policy is UnknownChargerPolicy.REFUSE
    assert runtime.backend.heartbeat_interval == 60
    # The new policy is in force: an unknown charger's websocket upgrade is refused...
    assert await refused_status(f"ws://127.0.0.1:{ws_port}/STRANGER") == 404
    # ...a known one boots with the new heartbeat interval.
    charger, ws, task = await connect(f"ws://127.0.0.1:{ws_port}", "CP1")
    try:
        boot = await charger.boot()
        assert boot.status == "Accepted"
        assert boot.interval == 60
    finally:
        task.cancel()
        await ws.close()


async def test_refuse_policy_refuses_the_websocket_upgrade(hass: HomeAssistant, ws_port: int) -> None:
    entry = site_entry(ws_port, chargers={"CP1": {}}, options={CONF_UNKNOWN_CHARGERS: "refuse"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert await refused_status(f"ws://127.0.0.1:{ws_port}/STRANGER") == 404
    assert [sub.unique_id for sub in entry.subentries.values()] == ["CP1"]
    assert hass.config_entries.flow.async_progress() == []
    assert await can_boot(f"ws://127.0.0.1:{ws_port}", "CP1") == "Accepted"


# ---------------------------------------------------------------------- charger sub-entries
async def start_charger_flow(hass: HomeAssistant, entry: ConfigEntry) -> str:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CHARGER), context={"source": "user"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return str(result["flow_id"])


def charger_subentry(entry: ConfigEntry, charger_id: str) -> Any:
    found = [sub for sub in entry.subentries.values() if sub.unique_id == charger_id]
    assert len(found) == 1, f"{charger_id}: {len(found)} sub-entries"
    return found[0]


async def test_charger_subentry_is_created_with_a_hashed_password(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    flow_id = await start_charger_flow(hass, site)
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_CHARGER_ID: " CP2 ", "name": "Garage", CONF_PASSWORD: "s3cret-pw", CONF_MAX_CURRENT: 16}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    sub = charger_subentry(site, "CP2")
    assert sub.title == "Garage"
    assert sub.subentry_type == SUBENTRY_CHARGER
    assert set(sub.data) == {
        CONF_CHARGER_ID,
        CONF_MAX_CURRENT,
        CONF_PASSWORD_HASH,
        "board",
        "min_current",
        "phases",
        "phase",
        "priority",
        "phase_switching",
    }
    assert sub.data[CONF_CHARGER_ID] == "CP2"
    assert sub.data[CONF_MAX_CURRENT] == 16
    stored = sub.data[CONF_PASSWORD_HASH]
    assert stored.startswith("pbkdf2_sha256$")
    assert verify_password("s3cret-pw", stored)
    assert "s3cret-pw" not in repr(dict(sub.data))
    assert CONF_PASSWORD not in sub.data

    # The site knows the charger at once (no reload): the password is required.
    assert site.runtime_data.coordinators["CP2"].max_current == 16
    with pytest.raises(InvalidStatus) as refused:
        await chargers("CP2", password="wrong")
    assert refused.value.response.status_code == 401
    await chargers("CP2", password="s3cret-pw")
    await hass.async_block_till_done()
    assert state_of(hass, "binary_sensor.garage_connected") == "on"


async def test_charger_subentry_without_password_or_name(hass: HomeAssistant, site: MockConfigEntry) -> None:
    flow_id = await start_charger_flow(hass, site)
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_CHARGER_ID: "CP3", CONF_MAX_CURRENT: 32}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    sub = charger_subentry(site, "CP3")
    assert sub.title == "CP3"
    # The sharing settings take their defaults: 6 A minimum, three-phase, priority 0, no phase switching.
    assert dict(sub.data) == {
        CONF_CHARGER_ID: "CP3",
        CONF_MAX_CURRENT: 32,
        "board": "site",
        "min_current": 6.0,
        "phases": 3,
        "phase": "L1",
        "priority": 0,
        "phase_switching": False,
    }


@pytest.mark.parametrize(
    ("charger_id", "error"),
    [
        ("CP1", "charger_exists"),
        ("   ", "invalid_charger_id"),
        ("site/CP9", "invalid_charger_id"),
        ("X" * 49, "invalid_charger_id"),
    ],
    ids=["duplicate", "blank", "slash", "too-long"],
)
async def test_charger_subentry_errors_then_recovery(
    hass: HomeAssistant, site: MockConfigEntry, charger_id: str, error: str
) -> None:
    flow_id = await start_charger_flow(hass, site)
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_CHARGER_ID: charger_id, CONF_MAX_CURRENT: 32}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CHARGER_ID: error}
    assert len(site.subentries) == 1

    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_CHARGER_ID: "X" * 48, CONF_MAX_CURRENT: 32}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert charger_subentry(site, "X" * 48).title == "X" * 48


async def start_charger_reconfigure(hass: HomeAssistant, entry: ConfigEntry, charger_id: str) -> str:
    sub = charger_subentry(entry, charger_id)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_CHARGER), context={"source": "reconfigure", "subentry_id": sub.subentry_id}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    assert result["description_placeholders"] == {"charger": charger_id}
    return str(result["flow_id"])


async def test_charger_reconfigure_password_and_max_current(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    # A new password, a new maximum current: applied without reloading the site.
    runtime = site.runtime_data
    flow_id = await start_charger_reconfigure(hass, site, "CP1")
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_PASSWORD: "first-pw", CONF_MAX_CURRENT: 20}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    sub = charger_subentry(site, "CP1")
    assert verify_password("first-pw", sub.data[CONF_PASSWORD_HASH])
    assert "first-pw" not in repr(dict(sub.data))
    assert sub.data[CONF_MAX_CURRENT] == 20
    assert site.runtime_data is runtime
    assert runtime.coordinators["CP1"].max_current == 20
    with pytest.raises(InvalidStatus):
        await chargers("CP1")  # no password any more
    cp = await chargers("CP1", password="first-pw")
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    limit = hass.states.get("number.cp1_current_limit")
    assert limit is not None
    assert limit.attributes["max"] == 20
    await chargers.disconnect(cp)

    # Neither a new password nor "clear": the hash is kept.
    flow_id = await start_charger_reconfigure(hass, site, "CP1")
    await hass.config_entries.subentries.async_configure(flow_id, {CONF_MAX_CURRENT: 24})
    assert charger_subentry(site, "CP1").data[CONF_PASSWORD_HASH] == sub.data[CONF_PASSWORD_HASH]

    # Clear the password: the charger connects without one again.
    flow_id = await start_charger_reconfigure(hass, site, "CP1")
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {"clear_password": True, CONF_MAX_CURRENT: 24}
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert CONF_PASSWORD_HASH not in charger_subentry(site, "CP1").data
    await chargers("CP1")


# ---------------------------------------------------------------------- discovery
async def test_unknown_charger_is_discovered_then_added(
    hass: HomeAssistant, ws_port: int, chargers: ChargerFactory
) -> None:
    entry = site_entry(ws_port, options={CONF_UNKNOWN_CHARGERS: "ask"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    cp = await chargers("NEW1", boot=False)
    boot = await cp.boot()
    assert boot.status == "Pending"
    await hass.async_block_till_done()
    flows = [flow for flow in hass.config_entries.flow.async_progress() if flow["handler"] == DOMAIN]
    assert len(flows) == 1
    flow = flows[0]
    assert flow["context"]["source"] == "integration_discovery"
    assert flow["context"]["title_placeholders"] == {"charger": "NEW1"}
    assert flow["step_id"] == "discovery_confirm"
    assert entry.subentries == {}
    assert hass.states.get("binary_sensor.garage_connected") is None

    # A second knock of the same charger does not open a second flow.
    await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": "integration_discovery"}, data={"entry_id": entry.entry_id, CONF_CHARGER_ID: "NEW1"}
    )
    assert len([f for f in hass.config_entries.flow.async_progress() if f["handler"] == DOMAIN]) == 1

    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {"name": "Garage"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "charger_added"
    await hass.async_block_till_done()
    sub = charger_subentry(entry, "NEW1")
    assert sub.title == "Garage"
    assert dict(sub.data) == {CONF_CHARGER_ID: "NEW1"}

    # The site asks the pending charger to boot again; it is accepted and its entities appear.
    await wait_for(lambda: entry.runtime_data.backend.chargers["NEW1"].boot_status == "Accepted")
    assert ("TriggerMessage", {"requestedMessage": "BootNotification", "connectorId": None}) in cp.received
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, "binary_sensor.garage_connected") == "on"
    assert state_of(hass, "sensor.garage_status") == "available"


async def test_discovery_aborts(hass: HomeAssistant, site: MockConfigEntry) -> None:
    async def discover(entry_id: str, charger_id: str) -> Any:
        return await hass.config_entries.flow.async_init(
            DOMAIN,
            context={"source": "integration_discovery"},
            data={"entry_id": entry_id, CONF_CHARGER_ID: charger_id},
        )

    result = await discover("no-such-entry", "NEW1")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "site_not_found"
    result = await discover(site.entry_id, "CP1")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"

    # The charger was added by hand while the question was open: confirming adds no duplicate.
    result = await discover(site.entry_id, "NEW2")
    assert result["type"] is FlowResultType.FORM
    flow_id = result["flow_id"]
    sub_flow = await start_charger_flow(hass, site)
    await hass.config_entries.subentries.async_configure(sub_flow, {CONF_CHARGER_ID: "NEW2", CONF_MAX_CURRENT: 32})
    result = await hass.config_entries.flow.async_configure(flow_id, {})
    assert result["reason"] == "charger_added"
    assert charger_subentry(site, "NEW2").title == "NEW2"


async def test_discovery_confirmed_after_the_site_was_removed(hass: HomeAssistant, ws_port: int) -> None:
    entry = site_entry(ws_port, options={CONF_UNKNOWN_CHARGERS: "ask"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": "integration_discovery"}, data={"entry_id": entry.entry_id, CONF_CHARGER_ID: "NEW3"}
    )
    assert result["type"] is FlowResultType.FORM
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "site_not_found"


async def options_page(hass: HomeAssistant, entry: MockConfigEntry, page: str, values: dict[str, Any]) -> Any:
    """Open the site options, pick ``page`` and submit ``values``."""
    menu = await hass.config_entries.options.async_init(entry.entry_id)
    form = await hass.config_entries.options.async_configure(menu["flow_id"], {"next_step_id": page})
    assert form["step_id"] == page
    result = await hass.config_entries.options.async_configure(form["flow_id"], values)
    await hass.async_block_till_done()
    return result


async def test_strategy_option_pages_keep_the_other_pages_and_check_their_sources(
    hass: HomeAssistant, site: MockConfigEntry
) -> None:
    before = dict(site.options)
    result = await options_page(hass, site, "pv", {"pv_reserve_w": 300, "pv_enable_delay_s": 90})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert site.options["pv_reserve_w"] == 300
    assert site.options["pv_enable_delay_s"] == 90
    assert site.options["pv_disable_delay_s"] == 180
    assert {key: site.options[key] for key in before} == before  # the site page is untouched

    # ZNI: on without a source, or half a portal, is refused; an entity is enough.
    result = await options_page(hass, site, "zni", {"zni_enabled": True})
    assert result["errors"] == {"base": "zni_no_source"}
    result = await options_page(hass, site, "zni", {"zni_enabled": True, "zni_base_url": "https://odp.example"})
    assert result["errors"] == {"base": "zni_incomplete_source"}
    result = await options_page(hass, site, "zni", {"zni_enabled": True, "zni_entity": "input_boolean.edf_signal"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert site.options["zni_entity"] == "input_boolean.edf_signal"
    assert site.options["zni_fraction"] == 50
    assert site.options["zni_safe_default"] == "0"
    assert site.options["pv_reserve_w"] == 300  # the PV page is untouched

    # Tariffs: a schedule that cannot be read is refused with the field named.
    result = await options_page(hass, site, "tariffs", {"offpeak_schedule": "every night"})
    assert result["errors"] == {"offpeak_schedule": "invalid_schedule"}
    result = await options_page(
        hass, site, "tariffs", {"offpeak_schedule": " lun-ven 22:00-06:00; sam,dim 00:00-24:00 "}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert site.options["offpeak_schedule"] == "lun-ven 22:00-06:00; sam,dim 00:00-24:00"
    # Emptying a field removes it.
    result = await options_page(hass, site, "tariffs", {"offpeak_schedule": ""})
    assert "offpeak_schedule" not in site.options

    # Cloud: a websocket address and a token, both or neither.
    result = await options_page(hass, site, "cloud", {"cloud_url": "https://cloud.example"})
    assert result["errors"] == {"cloud_url": "invalid_cloud_url"}
    result = await options_page(hass, site, "cloud", {"cloud_url": "wss://cloud.example/uplink/v1"})
    assert result["errors"] == {"base": "cloud_incomplete"}
    result = await options_page(
        hass, site, "cloud", {"cloud_url": "wss://cloud.example/uplink/v1", "cloud_token": "t", "city": "Le Lamentin"}
    )
    assert result["errors"] == {"base": "cloud_address_required"}
    result = await options_page(hass, site, "cloud", {"country": "France"})
    assert result["errors"] == {"country": "invalid_country"}
    result = await options_page(hass, site, "cloud", {"country": "mtq"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert site.options["country"] == "MTQ"


def frontend_fields(schema: Any) -> list[dict[str, Any]]:
    """The form as the frontend gets it (probatio on 2026.10, voluptuous-serialize before)."""
    fields: Any
    try:
        import probatio

        fields = probatio.to_field_list(schema, custom_serializer=cv.custom_serializer)
    except ImportError:
        import voluptuous_serialize

        fields = voluptuous_serialize.convert(schema, custom_serializer=cv.custom_serializer)
    assert isinstance(fields, list)
    return fields


@pytest.mark.parametrize("page", ["site", "pv", "zni", "tariffs", "cloud"])
async def test_every_options_page_can_be_drawn_by_the_frontend(
    hass: HomeAssistant, site: MockConfigEntry, page: str
) -> None:
    """The frontend serializes each form's schema: a validator it cannot describe breaks the page (HTTP 500)."""
    menu = await hass.config_entries.options.async_init(site.entry_id)
    form = await hass.config_entries.options.async_configure(menu["flow_id"], {"next_step_id": page})
    fields = frontend_fields(form["data_schema"])
    assert fields
    hass.config_entries.options.async_abort(form["flow_id"])
