"""The automation blueprints in blueprints/automation/cariflex, run by a real Home Assistant.

Test chargers are template entities (a template select and a template number backed by input
helpers), so the blueprints call the real ``select.select_option`` and ``number.set_value``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
import shutil
from typing import Any

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import persistent_notification as pn
from homeassistant.components.automation.helpers import async_get_blueprints
from homeassistant.components.blueprint.models import Blueprint
from homeassistant.core import CoreState, HomeAssistant, ServiceCall, callback
from homeassistant.helpers import device_registry as dr, entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed, async_mock_service

from tests.conftest import state_of

SOURCE = Path(__file__).parents[2] / "blueprints" / "automation" / "cariflex"
BLUEPRINTS = {
    "pv_weekdays_full_weekends.yaml",
    "off_peak_charging.yaml",
    "zni_cap_notification.yaml",
    "car_full_notification.yaml",
    "tempo_red_reduction.yaml",
}
MODES = ["off", "now", "min_pv", "pv"]
TZ = "America/Martinique"
MODE = "select.cp1_charging_mode"
MODE2 = "select.cp2_charging_mode"
LIMIT = "number.cp1_current_limit"
# 2025-06-02 is a Monday.
MONDAY = datetime(2025, 6, 2)
SATURDAY = datetime(2025, 6, 7)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A configuration directory holding a copy of the blueprints, as a user would install them."""
    shutil.copytree(SOURCE, tmp_path / "blueprints" / "automation" / "cariflex")
    return tmp_path


@pytest.fixture
async def hass_bp(
    hass: HomeAssistant, config_dir: Path, freezer: FrozenDateTimeFactory
) -> AsyncIterator[HomeAssistant]:
    """Home Assistant in Martinique time, at Monday 00:00, with the blueprints installed."""
    hass.config.config_dir = str(config_dir)
    await hass.config.async_set_time_zone(TZ)
    freezer.move_to(local(MONDAY))
    assert await async_setup_component(hass, "persistent_notification", {})
    yield hass
    # Detach the triggers (time triggers keep a timer otherwise).
    if hass.services.has_service("automation", "turn_off"):
        await hass.services.async_call("automation", "turn_off", {"entity_id": "all"}, blocking=True)


def local(day: datetime, hour: int = 0, minute: int = 0) -> datetime:
    """``day`` at ``hour:minute`` in the site's time zone, as UTC."""
    moment = day.replace(hour=hour, minute=minute, tzinfo=dt_util.get_time_zone(TZ))
    return dt_util.as_utc(moment)


async def settle(hass: HomeAssistant) -> None:
    """Run what is pending; a template entity writes its state one loop turn after its source changes."""
    await hass.async_block_till_done()
    await hass.async_block_till_done()


async def go_to(hass: HomeAssistant, freezer: FrozenDateTimeFactory, moment: datetime) -> None:
    """Move the clock to ``moment`` and run what was due (only the next run of each time trigger)."""
    freezer.move_to(moment)
    async_fire_time_changed(hass, moment)
    await settle(hass)


async def wait(hass: HomeAssistant, freezer: FrozenDateTimeFactory, delta: timedelta) -> None:
    """Let ``delta`` pass and run what was due."""
    freezer.tick(delta)
    async_fire_time_changed(hass)
    await settle(hass)


async def add_chargers(hass: HomeAssistant) -> None:
    """Two chargers' mode selects (mode ``off``) and one current limit (32 A), as real entities."""
    assert await async_setup_component(
        hass,
        "input_select",
        {"input_select": {f"cp{n}_mode_store": {"options": MODES, "initial": "off"} for n in (1, 2)}},
    )
    assert await async_setup_component(
        hass,
        "input_number",
        {"input_number": {"cp1_limit_store": {"min": 0, "max": 32, "step": 1, "initial": 32}}},
    )
    selects = [
        {
            "name": f"CP{n} charging mode",
            "state": f"{{{{ states('input_select.cp{n}_mode_store') }}}}",
            "options": f"{{{{ {MODES} }}}}",
            "select_option": {
                "action": "input_select.select_option",
                "target": {"entity_id": f"input_select.cp{n}_mode_store"},
                "data": {"option": "{{ option }}"},
            },
        }
        for n in (1, 2)
    ]
    number = {
        "name": "CP1 current limit",
        "state": "{{ states('input_number.cp1_limit_store') }}",
        "min": 0,
        "max": 32,
        "step": 1,
        "set_value": {
            "action": "input_number.set_value",
            "target": {"entity_id": "input_number.cp1_limit_store"},
            "data": {"value": "{{ value }}"},
        },
    }
    assert await async_setup_component(hass, "template", {"template": [{"select": selects, "number": [number]}]})
    await hass.async_block_till_done()
    assert state_of(hass, MODE) == "off"
    assert float(state_of(hass, LIMIT)) == 32


async def set_mode(hass: HomeAssistant, entity_id: str, option: str) -> None:
    """Change a mode by hand."""
    await hass.services.async_call("select", "select_option", {"entity_id": entity_id, "option": option}, blocking=True)


async def add_automation(hass: HomeAssistant, blueprint: str, inputs: dict[str, Any], alias: str = "test") -> None:
    """An automation made from one of our blueprints; it must load (an invalid one is unavailable)."""
    config = {"alias": alias, "use_blueprint": {"path": f"cariflex/{blueprint}", "input": inputs}}
    assert await async_setup_component(hass, "automation", {"automation": config})
    await hass.async_block_till_done()
    assert state_of(hass, f"automation.{alias}") == "on"


def notifications(hass: HomeAssistant) -> dict[str, pn.Notification]:
    """The persistent notifications, kept up to date from now on."""
    shown: dict[str, pn.Notification] = {}

    @callback
    def update(kind: pn.UpdateType, changed: dict[str, pn.Notification]) -> None:
        for notification_id, notification in changed.items():
            if kind == pn.UpdateType.REMOVED:
                shown.pop(notification_id, None)
            else:
                shown[notification_id] = notification

    pn.async_register_callback(hass, update)
    return shown


def only(shown: dict[str, pn.Notification]) -> pn.Notification:
    """The single notification shown."""
    assert len(shown) == 1, shown
    return next(iter(shown.values()))


# Validation -----------------------------------------------------------------------------------


async def test_every_blueprint_is_a_valid_bilingual_automation_blueprint(hass_bp: HomeAssistant) -> None:
    """Home Assistant loads every file as an automation blueprint this version supports."""
    loaded = await async_get_blueprints(hass_bp).async_get_blueprints()
    assert set(loaded) == {f"cariflex/{name}" for name in BLUEPRINTS}
    for path, blueprint in loaded.items():
        assert isinstance(blueprint, Blueprint), f"{path}: {blueprint}"
        assert blueprint.domain == "automation"
        assert blueprint.validate() is None, path
        assert "\nFR : " in blueprint.metadata["description"], path
        for key, spec in blueprint.inputs.items():
            assert " / " in spec["name"] or key == "language", f"{path}: input {key} has no French name"
        # What targets our entities offers only Cariflex entities in the UI.
        for key in ("mode_selects", "current_limits", "zni_sensor", "cap_sensor", "power_sensor", "status_sensor"):
            if key in blueprint.inputs:
                assert blueprint.inputs[key]["selector"]["entity"]["filter"][0]["integration"] == "cariflex"


async def test_an_automation_without_a_required_input_does_not_load(hass_bp: HomeAssistant) -> None:
    """The check above can fail: a missing input makes the automation unavailable."""
    config = {"alias": "broken", "use_blueprint": {"path": "cariflex/car_full_notification.yaml", "input": {}}}
    assert await async_setup_component(hass_bp, "automation", {"automation": config})
    await hass_bp.async_block_till_done()
    assert state_of(hass_bp, "automation.broken") == "unavailable"


# 1. PV surplus on weekdays, full speed at weekends ----------------------------------------------


async def test_weekdays_on_pv_surplus_weekends_at_full_speed(
    hass_bp: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """At 07:00 on a weekday both chargers go to ``pv``; at 07:00 on a Saturday to ``now``."""
    hass = hass_bp
    await add_chargers(hass)
    await add_automation(hass, "pv_weekdays_full_weekends.yaml", {"mode_selects": [MODE, MODE2]})

    await go_to(hass, freezer, local(MONDAY, 6, 59))
    assert state_of(hass, MODE) == "off"
    await go_to(hass, freezer, local(MONDAY, 7))
    assert (state_of(hass, MODE), state_of(hass, MODE2)) == ("pv", "pv")

    await go_to(hass, freezer, local(SATURDAY, 7))
    assert (state_of(hass, MODE), state_of(hass, MODE2)) == ("now", "now")


async def test_weekend_time_and_days_are_configurable(hass_bp: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """A weekend switch at 09:30 acts on the chosen days only, with the chosen mode."""
    hass = hass_bp
    await add_chargers(hass)
    inputs = {"mode_selects": [MODE], "weekend_time": "09:30:00", "weekend_days": ["sun"], "weekend_mode": "min_pv"}
    await add_automation(hass, "pv_weekdays_full_weekends.yaml", inputs)

    await go_to(hass, freezer, local(MONDAY, 7))
    assert state_of(hass, MODE) == "pv"
    await set_mode(hass, MODE, "off")
    await go_to(hass, freezer, local(MONDAY, 9, 30))  # not a weekend day
    assert state_of(hass, MODE) == "off"
    await go_to(hass, freezer, local(SATURDAY, 9, 30))  # not chosen
    assert state_of(hass, MODE) == "off"
    await go_to(hass, freezer, local(SATURDAY + timedelta(days=1), 7))  # Sunday, weekday time: not a weekday
    assert state_of(hass, MODE) == "off"
    await go_to(hass, freezer, local(SATURDAY + timedelta(days=1), 9, 30))
    assert state_of(hass, MODE) == "min_pv"


# 2. Off-peak hours only ---------------------------------------------------------------------------


async def test_off_peak_from_a_binary_sensor(hass_bp: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """The entity drives the mode; the default times do nothing while an entity is given."""
    hass = hass_bp
    await add_chargers(hass)
    hass.states.async_set("binary_sensor.off_peak", "off")
    await add_automation(
        hass, "off_peak_charging.yaml", {"mode_selects": [MODE], "offpeak_entity": "binary_sensor.off_peak"}
    )

    hass.states.async_set("binary_sensor.off_peak", "on")
    await settle(hass)
    assert state_of(hass, MODE) == "now"

    await go_to(hass, freezer, local(MONDAY, 6))  # the default end time
    assert state_of(hass, MODE) == "now"

    hass.states.async_set("binary_sensor.off_peak", "off")
    await settle(hass)
    assert state_of(hass, MODE) == "off"

    await go_to(hass, freezer, local(MONDAY, 22))  # the default start time
    assert state_of(hass, MODE) == "off"


async def test_off_peak_from_times_with_chosen_modes(hass_bp: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """Without an entity, the start and end times switch between the two chosen modes."""
    hass = hass_bp
    await add_chargers(hass)
    inputs = {
        "mode_selects": [MODE, MODE2],
        "start_time": "23:30:00",
        "end_time": "07:30:00",
        "offpeak_mode": "min_pv",
        "peak_mode": "pv",
    }
    await add_automation(hass, "off_peak_charging.yaml", inputs)

    await go_to(hass, freezer, local(MONDAY, 7, 30))
    assert (state_of(hass, MODE), state_of(hass, MODE2)) == ("pv", "pv")
    await go_to(hass, freezer, local(MONDAY, 23, 29))
    assert state_of(hass, MODE) == "pv"
    await go_to(hass, freezer, local(MONDAY, 23, 30))
    assert (state_of(hass, MODE), state_of(hass, MODE2)) == ("min_pv", "min_pv")
    await go_to(hass, freezer, local(MONDAY + timedelta(days=1), 7, 30))
    assert (state_of(hass, MODE), state_of(hass, MODE2)) == ("pv", "pv")


# 3. ZNI cap notification ------------------------------------------------------------------------------


async def test_zni_signal_0_shows_the_cap_then_its_end(hass_bp: HomeAssistant) -> None:
    """Signal 0: a persistent notification with the applied cap; back to 1: the same one says so."""
    hass = hass_bp
    shown = notifications(hass)
    hass.states.async_set("binary_sensor.site_zni_constraint", "off")
    hass.states.async_set("sensor.site_zni_cap", "18.0", {"unit_of_measurement": "kW"})
    inputs = {"zni_sensor": "binary_sensor.site_zni_constraint", "cap_sensor": "sensor.site_zni_cap"}
    await add_automation(hass, "zni_cap_notification.yaml", inputs)

    hass.states.async_set("sensor.site_zni_cap", "11.5", {"unit_of_measurement": "kW"})
    hass.states.async_set("binary_sensor.site_zni_constraint", "on")
    await hass.async_block_till_done()
    notification = only(shown)
    assert notification["title"] == "ZNI signal 0: charging capped"
    assert "capped at 11.5 kW." in notification["message"]

    hass.states.async_set("binary_sensor.site_zni_constraint", "off")
    await hass.async_block_till_done()
    notification = only(shown)  # replaced, not added
    assert notification["title"] == "ZNI signal 1: full power"
    assert "back to 1" in notification["message"]


async def test_zni_notification_through_a_notify_action_in_french(hass_bp: HomeAssistant) -> None:
    """A notify action gets title and message; no end message when not wanted; a restart is no news."""
    hass = hass_bp
    shown = notifications(hass)
    calls = async_mock_service(hass, "notify", "mobile_app_phone")
    hass.states.async_set("binary_sensor.site_zni_constraint", "unavailable")
    hass.states.async_set("sensor.site_zni_cap", "16", {"unit_of_measurement": "A"})
    inputs = {
        "zni_sensor": "binary_sensor.site_zni_constraint",
        "cap_sensor": "sensor.site_zni_cap",
        "notify_action": "notify.mobile_app_phone",
        "notify_end": False,
        "language": "fr",
    }
    await add_automation(hass, "zni_cap_notification.yaml", inputs)

    hass.states.async_set("binary_sensor.site_zni_constraint", "on")  # coming back after a restart
    await hass.async_block_till_done()
    assert calls == []

    for state in ("off", "on", "off"):
        hass.states.async_set("binary_sensor.site_zni_constraint", state)
        await hass.async_block_till_done()
    assert len(calls) == 1
    assert calls[0].data["title"] == "Signal ZNI à 0 : recharge plafonnée"
    assert "plafonnées à 16 A." in calls[0].data["message"]
    assert shown == {}


# 4. Car full notification -------------------------------------------------------------------------------


async def car_full(hass: HomeAssistant, **inputs: Any) -> dict[str, pn.Notification]:
    """A charging CP1 drawing 7.2 kW, watched by the car-full blueprint."""
    shown = notifications(hass)
    hass.states.async_set("sensor.cp1_power", "7.2", {"unit_of_measurement": "kW", "friendly_name": "CP1 Power"})
    hass.states.async_set("sensor.cp1_status", "charging")
    await add_automation(
        hass,
        "car_full_notification.yaml",
        {"power_sensor": "sensor.cp1_power", "status_sensor": "sensor.cp1_status", **inputs},
    )
    return shown


async def set_power(hass: HomeAssistant, value: str, unit: str = "kW") -> None:
    """Report the charger's power."""
    hass.states.async_set("sensor.cp1_power", value, {"unit_of_measurement": unit, "friendly_name": "CP1 Power"})
    await settle(hass)


async def test_car_full_after_ten_minutes_below_100_w(hass_bp: HomeAssistant, freezer: FrozenDateTimeFactory) -> None:
    """0.05 kW (50 W) for 10 minutes while charging: one notification naming the charger."""
    hass = hass_bp
    shown = await car_full(hass)
    await set_power(hass, "0.05")
    await wait(hass, freezer, timedelta(minutes=9))
    assert shown == {}
    await wait(hass, freezer, timedelta(minutes=1, seconds=1))
    notification = only(shown)
    assert notification["title"] == "Car full"
    assert notification["message"].startswith("CP1 Power: the power has been below 100 W for 10 min")


async def test_car_full_is_not_announced_when_power_comes_back_or_no_session(
    hass_bp: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """Power back above the threshold restarts the wait; an idle charger never notifies."""
    hass = hass_bp
    shown = await car_full(hass)
    await set_power(hass, "0.05")
    await wait(hass, freezer, timedelta(minutes=8))
    await set_power(hass, "3.5")
    await hass.async_block_till_done()
    await wait(hass, freezer, timedelta(minutes=5))
    assert shown == {}

    await set_power(hass, "unavailable")  # no value is not "below"
    await wait(hass, freezer, timedelta(minutes=11))
    assert shown == {}

    await set_power(hass, "3.5")
    hass.states.async_set("sensor.cp1_status", "available")
    await set_power(hass, "0")
    await wait(hass, freezer, timedelta(minutes=11))
    assert shown == {}


async def test_car_full_in_watts_with_custom_states_through_notify(
    hass_bp: HomeAssistant, freezer: FrozenDateTimeFactory
) -> None:
    """A sensor in W on a named device, 500 W / 2 min, a custom session state, a notify action in French."""
    hass = hass_bp
    calls: list[ServiceCall] = async_mock_service(hass, "notify", "mobile_app_phone")
    entry = MockConfigEntry(domain="cariflex")
    entry.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={("cariflex", "CP1")}, name="Borne parking"
    )
    er.async_get(hass).async_get_or_create(
        "sensor", "cariflex", "CP1_power", device_id=device.id, suggested_object_id="cp1_power"
    )
    await car_full(
        hass,
        threshold=500,
        minutes=2,
        charging_states=["suspended_evse"],
        notify_action="notify.mobile_app_phone",
        language="fr",
    )
    await set_power(hass, "700", "W")
    hass.states.async_set("sensor.cp1_status", "suspended_evse")
    await hass.async_block_till_done()
    await set_power(hass, "450", "W")
    await wait(hass, freezer, timedelta(minutes=2, seconds=1))
    assert len(calls) == 1
    assert calls[0].data["title"] == "Véhicule chargé"
    assert calls[0].data["message"].startswith("Borne parking : la puissance est sous 500 W depuis 2 min")


# 5. Tempo red days ----------------------------------------------------------------------------------------


async def tempo(hass: HomeAssistant, **inputs: Any) -> Callable[[str], Any]:
    """CP1 at 32 A in mode ``now``, a blue Tempo day, and the Tempo blueprint."""
    await add_chargers(hass)
    await set_mode(hass, MODE, "now")
    hass.states.async_set("sensor.rte_tempo_couleur_actuelle", "Bleu")
    await add_automation(
        hass, "tempo_red_reduction.yaml", {"tempo_sensor": "sensor.rte_tempo_couleur_actuelle", **inputs}
    )

    async def colour(value: str) -> None:
        hass.states.async_set("sensor.rte_tempo_couleur_actuelle", value)
        await settle(hass)

    return colour


async def test_tempo_red_day_lowers_the_limit_and_mode_then_restores_them(hass_bp: HomeAssistant) -> None:
    """Red: 6 A and ``pv``; a white day after it: 32 A and ``now`` again."""
    hass = hass_bp
    colour = await tempo(hass, current_limits=[LIMIT], mode_selects=[MODE])
    await colour("Blanc")
    assert (float(state_of(hass, LIMIT)), state_of(hass, MODE)) == (32, "now")

    await colour("Rouge")
    assert (float(state_of(hass, LIMIT)), state_of(hass, MODE)) == (6, "pv")
    await colour("unavailable")  # not a colour: nothing restored
    assert (float(state_of(hass, LIMIT)), state_of(hass, MODE)) == (6, "pv")

    await colour("Blanc")
    assert (float(state_of(hass, LIMIT)), state_of(hass, MODE)) == (32, "now")


async def test_tempo_keeps_what_was_changed_by_hand_and_matches_red_without_case(hass_bp: HomeAssistant) -> None:
    """A limit set by hand on a red day stays; the mode still at the red-day mode is restored."""
    hass = hass_bp
    inputs = {"current_limits": [LIMIT], "mode_selects": [MODE], "reduced_current": 10, "red_mode": "off"}
    colour = await tempo(hass, **inputs)
    await colour(" ROUGE ")
    assert (float(state_of(hass, LIMIT)), state_of(hass, MODE)) == (10, "off")

    await hass.services.async_call("number", "set_value", {"entity_id": LIMIT, "value": 16}, blocking=True)
    await colour("BLUE")
    assert (float(state_of(hass, LIMIT)), state_of(hass, MODE)) == (16, "now")


async def test_tempo_with_limits_only_and_custom_red_values(hass_bp: HomeAssistant) -> None:
    """Without mode selects only the limit moves; the red values are the user's."""
    hass = hass_bp
    colour = await tempo(hass, current_limits=[LIMIT], red_values=["TEMPO_RED"], normal_current=20)
    await colour("Rouge")  # not one of the chosen values
    assert float(state_of(hass, LIMIT)) == 32
    await colour("tempo_red")
    assert (float(state_of(hass, LIMIT)), state_of(hass, MODE)) == (6, "now")
    await colour("tempo_white")
    assert float(state_of(hass, LIMIT)) == 20


async def test_tempo_red_day_at_start_up(hass_bp: HomeAssistant) -> None:
    """Home Assistant starting on a red day reduces the limit (the colour did not change while it was down)."""
    hass = hass_bp
    await add_chargers(hass)
    hass.states.async_set("sensor.rte_tempo_couleur_actuelle", "Rouge")
    hass.set_state(CoreState.not_running)
    await add_automation(
        hass,
        "tempo_red_reduction.yaml",
        {"tempo_sensor": "sensor.rte_tempo_couleur_actuelle", "current_limits": [LIMIT]},
    )
    assert float(state_of(hass, LIMIT)) == 32
    await hass.async_start()
    await settle(hass)
    assert float(state_of(hass, LIMIT)) == 6
