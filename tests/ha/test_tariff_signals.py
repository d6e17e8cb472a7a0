"""Grid and tariff signals in a real Home Assistant: RTE's Tempo and EcoWatt, the EDF open-data ZNI signal
(local fakes of both portals), the weekend policy.

The fake follows RTE's documented contract (tests/signals/fakes.py, recorded payloads); its
calendar and signals are written for today so that the live clock of the test picks them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestServer
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.cariflex.const import DOMAIN
from custom_components.cariflex.ems.tariff import TariffOption, TariffPolicy
from custom_components.cariflex.energy import EmsMode
from custom_components.cariflex.signals.timeutil import PARIS
from tests.conftest import ChargerFactory, free_port, state_of, wait_for
from tests.ha.test_config_flow import options_page
from tests.ha.test_strategies import charging, cycle, energy, meter, select, start_site, strategy_of
from tests.signals.fakes import DATASET_ID, ODS_API_KEY, RTE_CLIENT_ID, RTE_CLIENT_SECRET, FakeOpendatasoft, FakeRte

pytestmark = pytest.mark.usefixtures("socket_enabled", "entity_registry_enabled_by_default")

TEMPO = "sensor.test_site_tempo_colour"
ECOWATT = "sensor.test_site_ecowatt"


def _midnight(day: date) -> str:
    return datetime.combine(day, datetime.min.time(), PARIS).isoformat()


def tempo_body(today: date, colours: tuple[str, str, str]) -> dict[str, Any]:
    """RTE's tempo_like_calendars answer for yesterday, today and tomorrow (most recent first)."""
    days = [today - timedelta(days=1), today, today + timedelta(days=1)]
    values = [
        {
            "start_date": _midnight(day),
            "end_date": _midnight(day + timedelta(days=1)),
            "value": colour,
            "updated_date": _midnight(day - timedelta(days=1)).replace("T00:00:00", "T10:40:00"),
        }
        for day, colour in zip(days, colours, strict=True)
    ]
    return {
        "tempo_like_calendars": {
            "start_date": _midnight(days[0]),
            "end_date": _midnight(today + timedelta(days=2)),
            "values": values[::-1],
        }
    }


def ecowatt_body(today: date, level: int) -> dict[str, Any]:
    """RTE's EcoWatt v5 signals: today and tomorrow, every hour at ``level``."""
    return {
        "signals": [
            {
                "GenerationFichier": _midnight(today),
                "jour": _midnight(day),
                "dvalue": level,
                "message": "Coupures d'électricité programmées" if level == 3 else "Pas d'alerte.",
                "values": [{"pas": pas, "hvalue": level} for pas in range(24)],
            }
            for day in (today, today + timedelta(days=1))
        ]
    }


@pytest.fixture
async def rte() -> AsyncIterator[tuple[FakeRte, str]]:
    """RTE's portal, faked on 127.0.0.1: today and yesterday red, tomorrow white; EcoWatt green."""
    today = dt_util.now(PARIS).date()
    fake = FakeRte(tempo=tempo_body(today, ("RED", "RED", "WHITE")), ecowatt=ecowatt_body(today, 1))
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("/"))
    await server.close()


def rte_options(url: str, **extra: Any) -> dict[str, Any]:
    return {"rte_client_id": RTE_CLIENT_ID, "rte_client_secret": RTE_CLIENT_SECRET, "rte_base_url": url, **extra}


async def test_the_tariff_page_checks_rte_credentials_and_keeps_the_weekend_policy(
    hass: HomeAssistant, site: MockConfigEntry, rte: tuple[FakeRte, str]
) -> None:
    fake, url = rte
    result = await options_page(hass, site, "tariffs", {"rte_client_id": RTE_CLIENT_ID})
    assert result["errors"] == {"base": "rte_credentials_incomplete"}
    result = await options_page(hass, site, "tariffs", rte_options(url, rte_client_secret="wrong"))
    assert result["errors"] == {"base": "rte_auth_failed"}
    result = await options_page(hass, site, "tariffs", rte_options("ftp://rte.example"))
    assert result["errors"] == {"base": "rte_invalid_url"}
    result = await options_page(hass, site, "tariffs", rte_options(f"http://127.0.0.1:{free_port()}"))
    assert result["errors"] == {"base": "rte_unreachable"}
    assert fake.token_requests == 1  # the wrong secret; the others never reached the portal

    result = await options_page(
        hass,
        site,
        "tariffs",
        rte_options(
            url,
            tariff_weekend_policy="offpeak",
            price_peak=0.25,
            price_offpeak=0.18,
            planner_goal="grid_import",
            planner_time_limit=2,
        ),
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert site.options["rte_client_secret"] == RTE_CLIENT_SECRET
    assert site.options["tariff_weekend_policy"] == "offpeak"
    assert site.options["price_offpeak"] == 0.18
    assert fake.token_requests >= 2
    # The reloaded site plans for the least grid import (the cost breaks ties) within 2 s.
    energy = site.runtime_data.energy
    assert energy is not None
    config = energy.planning.planner.config
    assert (config.import_weight, config.cost_weight, config.time_limit_s) == (1.0, 0.01, 2.0)


async def test_tempo_and_ecowatt_from_rte_hold_a_charger_that_avoids_red_days(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    ws_port: int,
    chargers: ChargerFactory,
    rte: tuple[FakeRte, str],
) -> None:
    fake, url = rte
    entry = await start_site(hass, ws_port, **rte_options(url, cloud_token="site-secret-token"))
    await wait_for(lambda: state_of(hass, TEMPO) == "red" and state_of(hass, ECOWATT) == "green", timeout=10)
    state = hass.states.get(TEMPO)
    assert state is not None
    assert state.attributes["tomorrow"] == "white"
    assert state.attributes["options"] == ["blue", "white", "red"]
    assert fake.tempo_requests
    assert fake.ecowatt_requests == 1
    assert fake.token_requests == 1  # one application, one token for both APIs

    cp1 = await charging(chargers, "CP1")
    meter(hass, 0)
    await cycle(hass, entry)
    await wait_for(lambda: cp1.connectors[1].limit_a == 31, timeout=10)  # "ignore": charges on a red day
    await select(hass, "select.cp1_tariff_policy", "avoid_red")
    await wait_for(lambda: cp1.connectors[1].limit_a == 0, timeout=10)
    assert strategy_of(hass, "sensor.cp1_limit_reason") == "tempo_red"

    # EcoWatt turns red: the reason follows the new answer at the next read.
    fake.ecowatt = ecowatt_body(dt_util.now(PARIS).date(), 3)
    entry.runtime_data.energy.tariffs.ecowatt_client._last_request = None  # type: ignore[union-attr]  # skip RTE's 15 min
    await energy(entry).tariffs.async_fetch_ecowatt()
    await cycle(hass, entry)
    assert state_of(hass, ECOWATT) == "red"
    assert strategy_of(hass, "sensor.cp1_limit_reason") == "ecowatt_red"

    diag: dict[str, Any] = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diag["entry"]["options"]["rte_client_secret"] == "**REDACTED**"
    assert diag["entry"]["options"]["rte_client_id"] == "**REDACTED**"
    assert diag["entry"]["options"]["cloud_token"] == "**REDACTED**"
    assert diag["signals"]["tempo"] == "rte"
    assert diag["signals"]["ecowatt"] == "rte"
    assert diag["signals"]["rte_errors"] == {}
    await hass.config_entries.async_unload(entry.entry_id)


async def test_refused_rte_credentials_raise_a_repair_issue_and_keep_the_last_colour(
    hass: HomeAssistant, ws_port: int, rte: tuple[FakeRte, str]
) -> None:
    fake, url = rte
    entry = await start_site(hass, ws_port, **rte_options(url))
    # Both first fetches done (EcoWatt's runs on its own): none may meet the rotated secret below.
    await wait_for(lambda: state_of(hass, TEMPO) == "red" and state_of(hass, ECOWATT) == "green", timeout=10)
    issue_id = f"rte_auth_failed_{entry.entry_id}"
    tariffs = energy(entry).tariffs

    fake.client_secret = "rotated-by-the-user"  # the application's secret changed on RTE's side
    fake.revoke()
    await tariffs.async_fetch_tempo()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    assert "401" in tariffs.errors["tempo"]
    await cycle(hass, entry)
    assert state_of(hass, TEMPO) == "red"  # the last calendar stays in use

    fake.client_secret = RTE_CLIENT_SECRET
    await tariffs.async_fetch_tempo()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert tariffs.errors == {}
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_tempo_entity_wins_over_the_rte_client_and_no_duplicate_sensor_is_made(
    hass: HomeAssistant, ws_port: int, rte: tuple[FakeRte, str]
) -> None:
    fake, url = rte
    hass.states.async_set("sensor.tempo_today", "Bleu")
    entry = await start_site(hass, ws_port, tempo_entity="sensor.tempo_today", **rte_options(url))
    await wait_for(lambda: state_of(hass, ECOWATT) == "green", timeout=10)
    assert hass.states.get(TEMPO) is None
    assert fake.tempo_requests == []
    assert energy(entry).data.tariff.tempo == "blue"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_the_weekend_policy_reaches_every_chargers_strategy_settings(
    hass: HomeAssistant, ws_port: int, chargers: ChargerFactory
) -> None:
    entry = await start_site(hass, ws_port, EmsMode.ON, tariff_weekend_policy="offpeak_avoid_red")
    cp1 = await charging(chargers, "CP1")
    coordinator = entry.runtime_data.coordinators["CP1"]
    connector = coordinator.charger.connector(1)
    settings = energy(entry)._session_settings(coordinator, connector, dt_util.utcnow().timestamp())
    assert settings.tariff == TariffOption(TariffPolicy.IGNORE, TariffPolicy.OFFPEAK_AVOID_RED)
    # The engine itself (tests/ems) applies the weekend policy on Saturdays and Sundays, local time.
    assert settings.tariff.policy(weekend=True) is TariffPolicy.OFFPEAK_AVOID_RED
    assert settings.tariff.policy(weekend=False) is TariffPolicy.IGNORE
    assert cp1.connectors[1].transaction_id is not None
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture
async def portal() -> AsyncIterator[tuple[FakeOpendatasoft, str]]:
    """The EDF open-data portal, faked on 127.0.0.1: the signal at 0 now, back to 1 in 40 minutes."""
    now = dt_util.utcnow()
    start = now.replace(minute=now.minute - now.minute % 10, second=0, microsecond=0) - timedelta(hours=2)
    rows = [
        {"horodate": (start + timedelta(minutes=10 * k)).isoformat(), "signal": 1 if k < 12 or k > 15 else 0}
        for k in range(36)
    ]
    fake = FakeOpendatasoft(rows=rows)
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("/"))
    fake.release.set()
    await server.close()


async def test_the_zni_signal_from_the_edf_portal_caps_the_chargers_and_announces_its_end(
    hass: HomeAssistant, ws_port: int, chargers: ChargerFactory, portal: tuple[FakeOpendatasoft, str]
) -> None:
    fake, url = portal
    entry = await start_site(
        hass,
        ws_port,
        zni_enabled=True,
        zni_base_url=url,
        zni_dataset=DATASET_ID,
        zni_api_key=ODS_API_KEY,
        subscribed_power_kw=36.0,
    )
    zni = energy(entry).zni
    await wait_for(lambda: zni.last_fetch is not None, timeout=10)
    assert zni.source == "portal"
    assert fake.auth_headers[0] == f"Apikey {ODS_API_KEY}"
    now = dt_util.utcnow()
    assert zni.value(now) == 0
    change = zni.next_change(now)
    assert change is not None
    assert change[1] == 1
    assert 0 < change[0] - now.timestamp() <= 40 * 60

    cp1 = await charging(chargers, "CP1")
    meter(hass, 0)
    await cycle(hass, entry)
    await wait_for(lambda: cp1.connectors[1].limit_a == 16, timeout=10)  # half of 32 A
    assert strategy_of(hass, "sensor.cp1_limit_reason") == "zni_cap"

    # The portal fails: the error is kept, the slots already read stay in use.
    fake.mode = "error500"
    await zni.async_fetch()
    assert zni.last_error is not None
    assert zni.value(dt_util.utcnow()) == 0
    await hass.config_entries.async_unload(entry.entry_id)


async def test_the_zni_page_checks_the_portal_settings_and_filters_a_territory(
    hass: HomeAssistant, ws_port: int, portal: tuple[FakeOpendatasoft, str]
) -> None:
    fake, url = portal
    for row in fake.rows:
        row["territoire"] = "Martinique"
    fake.rows += [{**row, "territoire": "Guadeloupe", "signal": 1} for row in fake.rows]
    entry = await start_site(hass, ws_port)
    portal_options = {"zni_enabled": True, "zni_base_url": url, "zni_dataset": DATASET_ID, "zni_api_key": ODS_API_KEY}
    result = await options_page(hass, entry, "zni", {**portal_options, "zni_territory": "Martinique"})
    assert result["errors"] == {"base": "zni_invalid_portal"}
    assert "territory" in result["description_placeholders"]["detail"]
    result = await options_page(hass, entry, "zni", {**portal_options, "zni_dataset": "not a dataset id!"})
    assert result["errors"] == {"base": "zni_invalid_portal"}

    result = await options_page(
        hass, entry, "zni", {**portal_options, "zni_territory": "Martinique", "zni_territory_field": "territoire"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()  # the site reloads with the portal
    zni = energy(entry).zni
    await wait_for(lambda: zni.last_fetch is not None, timeout=10)
    assert fake.requests[-1]["where"].endswith('AND territoire = "Martinique"')
    assert zni.value(dt_util.utcnow()) == 0  # Guadeloupe's 1 is not ours
    await hass.config_entries.async_unload(entry.entry_id)
