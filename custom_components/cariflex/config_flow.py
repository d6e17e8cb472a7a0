"""Config flow: the site entry, its options, reconfigure, chargers as sub-entries, discovery."""

from __future__ import annotations

from collections.abc import Mapping
import errno
import re
import socket
import ssl
from typing import Any

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentry,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import selector
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.util import dt as dt_util

from .access import AuthMode
from .compat import vol
from .const import (
    BAUDRATES,
    CONF_AUTH_MODE,
    CONF_BATTERY_FOR_EV,
    CONF_BATTERY_POWER_ENTITY,
    CONF_BATTERY_PRIORITY_SOC,
    CONF_BATTERY_SOC_ENTITY,
    CONF_BAUDRATE,
    CONF_BOARD,
    CONF_BOARD_CURRENT,
    CONF_BOARD_METER,
    CONF_BOARD_POWER,
    CONF_BYTESIZE,
    CONF_CERTFILE,
    CONF_CHARGER_ID,
    CONF_CLOUD_ADDRESS,
    CONF_CLOUD_CITY,
    CONF_CLOUD_COUNTRY,
    CONF_CLOUD_POSTAL_CODE,
    CONF_CLOUD_TOKEN,
    CONF_CLOUD_URL,
    CONF_ECOWATT_ENTITY,
    CONF_EMS_CYCLE,
    CONF_EMS_STRATEGY,
    CONF_GENSET_ENTITY,
    CONF_GENSET_POWER,
    CONF_GRID_POWER_ENTITY,
    CONF_HEARTBEAT_INTERVAL,
    CONF_HOST,
    CONF_KEYFILE,
    CONF_MAIN_BREAKER,
    CONF_MAX_CURRENT,
    CONF_METER_FALLBACK,
    CONF_MIN_CURRENT,
    CONF_OFFPEAK_ENTITY,
    CONF_OFFPEAK_SCHEDULE,
    CONF_PARENT,
    CONF_PARITY,
    CONF_PASSWORD,
    CONF_PASSWORD_HASH,
    CONF_PHASE,
    CONF_PHASE_SWITCHING,
    CONF_PHASES,
    CONF_PLANNER_GOAL,
    CONF_PLANNER_TIME_LIMIT,
    CONF_PORT,
    CONF_PRICE_FEED_IN,
    CONF_PRICE_OFFPEAK,
    CONF_PRICE_PEAK,
    CONF_PRIORITY,
    CONF_PROFILE,
    CONF_PV_DISABLE_DELAY,
    CONF_PV_ENABLE_DELAY,
    CONF_PV_FORECAST_ENTITY,
    CONF_PV_POWER_ENTITY,
    CONF_PV_RESERVE,
    CONF_ROLE,
    CONF_RTE_CLIENT_ID,
    CONF_RTE_CLIENT_SECRET,
    CONF_RTE_URL,
    CONF_RTU_FRAMING,
    CONF_SERIAL_PORT,
    CONF_SITE_NAME,
    CONF_STOPBITS,
    CONF_SUBSCRIBED_POWER,
    CONF_TARIFF_WEEKEND,
    CONF_TEMPO_ENTITY,
    CONF_UNIT_ID,
    CONF_UNKNOWN_CHARGERS,
    CONF_VOLTAGE,
    CONF_WS_PORT,
    CONF_WSS_PORT,
    CONF_ZNI_API_KEY,
    CONF_ZNI_DATASET,
    CONF_ZNI_ENABLED,
    CONF_ZNI_ENTITY,
    CONF_ZNI_FRACTION,
    CONF_ZNI_MAX_SESSIONS,
    CONF_ZNI_SAFE_DEFAULT,
    CONF_ZNI_TERRITORY,
    CONF_ZNI_TERRITORY_FIELD,
    CONF_ZNI_TIME_FIELD,
    CONF_ZNI_URL,
    CONF_ZNI_VALUE_FIELD,
    DEFAULT_EMS_CYCLE,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_MAX_CURRENT,
    DEFAULT_MIN_CURRENT,
    DEFAULT_MODBUS_PORT,
    DEFAULT_PHASES,
    DEFAULT_PLANNER_TIME_LIMIT,
    DEFAULT_SUBSCRIBED_POWER,
    DEFAULT_VOLTAGE,
    DEFAULT_WS_PORT,
    DEFAULT_WSS_PORT,
    DOMAIN,
    METER_ROLES,
    PLANNER_GOAL_COST,
    PLANNER_GOAL_IMPORT,
    ROLE_GRID,
    SITE_BOARD,
    SUBENTRY_BOARD,
    SUBENTRY_CHARGER,
    SUBENTRY_METER,
    TARIFF_WEEKEND_SAME,
)
from .ems.allocator import Strategy
from .ems.tariff import TariffPolicy
from .meters import async_load_profile, make_device
from .modbus import ModbusConnectionError, ModbusError, available_profiles
from .ocpp.server import build_ssl_context
from .ocpp.site import UnknownChargerPolicy, hash_password
from .signal_sources import zni_portal_client
from .signals import (
    RTE_BASE_URL,
    RteApi,
    ScheduleError,
    SignalAuthError,
    SignalConfigError,
    SignalError,
    parse_schedule,
)

CONNECTION_KEYS = (CONF_WS_PORT, CONF_WSS_PORT, CONF_CERTFILE, CONF_KEYFILE)
PORT = vol.All(vol.Coerce(int), vol.Range(min=0, max=65535))
POLICY_SELECTOR = selector.SelectSelector(
    selector.SelectSelectorConfig(
        options=[policy.value for policy in UnknownChargerPolicy],
        translation_key=CONF_UNKNOWN_CHARGERS,
        mode=selector.SelectSelectorMode.LIST,
    )
)
AUTH_SELECTOR = selector.SelectSelector(
    selector.SelectSelectorConfig(
        options=[mode.value for mode in AuthMode],
        translation_key=CONF_AUTH_MODE,
        mode=selector.SelectSelectorMode.LIST,
    )
)
PHASES_SELECTOR = selector.SelectSelector(
    selector.SelectSelectorConfig(
        options=["1", "3"], translation_key=CONF_PHASES, mode=selector.SelectSelectorMode.LIST
    )
)


def _port_free(port: int) -> bool:
    """Whether a TCP port can be bound on every interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _ports_in_use_by_entries(hass: HomeAssistant, exclude: str | None) -> set[int]:
    ports: set[int] = set()
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.entry_id == exclude:
            continue
        for key in (CONF_WS_PORT, CONF_WSS_PORT):
            if value := entry.data.get(key):
                ports.add(int(value))
    return ports


async def _validate_connection(
    hass: HomeAssistant, data: dict[str, Any], current: ConfigEntry | None
) -> dict[str, str]:
    """Check ports and certificate; errors keyed by field."""
    errors: dict[str, str] = {}
    ws_port = int(data.get(CONF_WS_PORT) or 0)
    certfile = data.get(CONF_CERTFILE)
    # The wss port is only opened when a certificate is given.
    wss_port = int(data.get(CONF_WSS_PORT) or 0) if certfile else 0
    if not ws_port and not wss_port:
        errors["base"] = "no_port"
        return errors
    if ws_port and ws_port == wss_port:
        errors[CONF_WSS_PORT] = "same_port"
        return errors
    taken = _ports_in_use_by_entries(hass, current.entry_id if current else None)
    ours: set[int] = set()
    if current is not None and current.state is ConfigEntryState.LOADED:
        ours = {int(current.data.get(key) or 0) for key in (CONF_WS_PORT, CONF_WSS_PORT)}
    for key, port in ((CONF_WS_PORT, ws_port), (CONF_WSS_PORT, wss_port)):
        if not port or port in ours:
            continue
        if port in taken or not await hass.async_add_executor_job(_port_free, port):
            errors[key] = "port_in_use"
    if certfile:
        try:
            await hass.async_add_executor_job(build_ssl_context, certfile, data.get(CONF_KEYFILE))
        except (OSError, ssl.SSLError, ValueError):
            errors[CONF_CERTFILE] = "invalid_certificate"
    return errors


def _connection_schema(defaults: dict[str, Any]) -> dict[vol.Marker, Any]:
    return {
        vol.Required(CONF_WS_PORT, default=defaults.get(CONF_WS_PORT, DEFAULT_WS_PORT)): PORT,
        vol.Optional(CONF_WSS_PORT, default=defaults.get(CONF_WSS_PORT, DEFAULT_WSS_PORT)): PORT,
        vol.Optional(CONF_CERTFILE, description={"suggested_value": defaults.get(CONF_CERTFILE)}): str,
        vol.Optional(CONF_KEYFILE, description={"suggested_value": defaults.get(CONF_KEYFILE)}): str,
    }


def _site_options_schema(defaults: dict[str, Any]) -> dict[vol.Marker, Any]:
    return {
        vol.Required(
            CONF_UNKNOWN_CHARGERS, default=defaults.get(CONF_UNKNOWN_CHARGERS, UnknownChargerPolicy.ACCEPT.value)
        ): POLICY_SELECTOR,
        vol.Required(CONF_AUTH_MODE, default=defaults.get(CONF_AUTH_MODE, AuthMode.OPEN.value)): AUTH_SELECTOR,
        vol.Required(CONF_PHASES, default=str(defaults.get(CONF_PHASES, DEFAULT_PHASES))): PHASES_SELECTOR,
        vol.Required(CONF_VOLTAGE, default=defaults.get(CONF_VOLTAGE, DEFAULT_VOLTAGE)): vol.All(
            vol.Coerce(int), vol.Range(min=100, max=480)
        ),
        vol.Required(
            CONF_SUBSCRIBED_POWER, default=defaults.get(CONF_SUBSCRIBED_POWER, DEFAULT_SUBSCRIBED_POWER)
        ): vol.All(vol.Coerce(float), vol.Range(min=1, max=100_000)),
        vol.Required(
            CONF_HEARTBEAT_INTERVAL, default=defaults.get(CONF_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_INTERVAL)
        ): vol.All(vol.Coerce(int), vol.Range(min=10, max=86_400)),
    }


STRATEGY_SELECTOR = selector.SelectSelector(
    selector.SelectSelectorConfig(
        options=[strategy.value for strategy in Strategy],
        translation_key=CONF_EMS_STRATEGY,
        mode=selector.SelectSelectorMode.LIST,
    )
)
PHASE_SELECTOR = selector.SelectSelector(selector.SelectSelectorConfig(options=["L1", "L2", "L3"]))


def _ems_options_schema(defaults: dict[str, Any]) -> dict[vol.Marker, Any]:
    """The energy manager: the grid meter and the main breaker (options only)."""
    return {
        vol.Optional(
            CONF_GRID_POWER_ENTITY, description={"suggested_value": defaults.get(CONF_GRID_POWER_ENTITY)}
        ): selector.EntitySelector(selector.EntitySelectorConfig(domain="sensor", device_class="power")),
        vol.Optional(CONF_MAIN_BREAKER, description={"suggested_value": defaults.get(CONF_MAIN_BREAKER)}): vol.All(
            vol.Coerce(float), vol.Range(min=1, max=5000)
        ),
        vol.Required(CONF_METER_FALLBACK, default=defaults.get(CONF_METER_FALLBACK, 0)): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=10_000_000)
        ),
        vol.Required(
            CONF_EMS_STRATEGY, default=defaults.get(CONF_EMS_STRATEGY, Strategy.EQUAL.value)
        ): STRATEGY_SELECTOR,
        vol.Required(CONF_EMS_CYCLE, default=defaults.get(CONF_EMS_CYCLE, DEFAULT_EMS_CYCLE)): vol.All(
            vol.Coerce(int), vol.Range(min=1, max=60)
        ),
        vol.Optional(
            CONF_PV_POWER_ENTITY, description={"suggested_value": defaults.get(CONF_PV_POWER_ENTITY)}
        ): selector.EntitySelector(selector.EntitySelectorConfig(domain="sensor", device_class="power")),
        vol.Optional(
            CONF_BATTERY_POWER_ENTITY, description={"suggested_value": defaults.get(CONF_BATTERY_POWER_ENTITY)}
        ): selector.EntitySelector(selector.EntitySelectorConfig(domain="sensor", device_class="power")),
        vol.Optional(
            CONF_BATTERY_SOC_ENTITY, description={"suggested_value": defaults.get(CONF_BATTERY_SOC_ENTITY)}
        ): selector.EntitySelector(selector.EntitySelectorConfig(domain="sensor", device_class="battery")),
        vol.Required(CONF_BATTERY_FOR_EV, default=defaults.get(CONF_BATTERY_FOR_EV, False)): bool,
        vol.Optional(CONF_GENSET_ENTITY, description={"suggested_value": defaults.get(CONF_GENSET_ENTITY)}): (
            selector.EntitySelector(selector.EntitySelectorConfig(domain=["binary_sensor", "input_boolean", "switch"]))
        ),
        vol.Optional(CONF_GENSET_POWER, description={"suggested_value": defaults.get(CONF_GENSET_POWER)}): vol.All(
            vol.Coerce(float), vol.Range(min=1, max=100_000)
        ),
    }


def _board_options(entry: ConfigEntry, exclude: str | None = None) -> list[selector.SelectOptionDict]:
    """The site and its sub-boards, as choices."""
    options = [selector.SelectOptionDict(value=SITE_BOARD, label=entry.title)]
    options.extend(
        selector.SelectOptionDict(value=sid, label=sub.title)
        for sid, sub in entry.subentries.items()
        if sub.subentry_type == SUBENTRY_BOARD and sid != exclude
    )
    return options


def _charger_ems_schema(defaults: Mapping[str, Any], entry: ConfigEntry) -> dict[vol.Marker, Any]:
    """How a charger takes part in the sharing."""
    return {
        vol.Required(CONF_BOARD, default=defaults.get(CONF_BOARD, SITE_BOARD)): selector.SelectSelector(
            selector.SelectSelectorConfig(options=_board_options(entry), mode=selector.SelectSelectorMode.DROPDOWN)
        ),
        vol.Required(CONF_MIN_CURRENT, default=defaults.get(CONF_MIN_CURRENT, DEFAULT_MIN_CURRENT)): vol.All(
            vol.Coerce(float), vol.Range(min=1, max=100)
        ),
        vol.Required(CONF_PHASES, default=str(defaults.get(CONF_PHASES, DEFAULT_PHASES))): PHASES_SELECTOR,
        vol.Required(CONF_PHASE, default=defaults.get(CONF_PHASE, "L1")): PHASE_SELECTOR,
        vol.Required(CONF_PRIORITY, default=defaults.get(CONF_PRIORITY, 0)): vol.All(
            vol.Coerce(int), vol.Range(min=0, max=10)
        ),
        vol.Required(CONF_PHASE_SWITCHING, default=bool(defaults.get(CONF_PHASE_SWITCHING, False))): bool,
    }


def _charger_ems_data(user_input: dict[str, Any]) -> dict[str, Any]:
    return {
        CONF_BOARD: user_input.get(CONF_BOARD, SITE_BOARD),
        CONF_MIN_CURRENT: float(user_input.get(CONF_MIN_CURRENT, DEFAULT_MIN_CURRENT)),
        CONF_PHASES: int(user_input.get(CONF_PHASES, DEFAULT_PHASES)),
        CONF_PHASE: user_input.get(CONF_PHASE, "L1"),
        CONF_PRIORITY: int(user_input.get(CONF_PRIORITY, 0)),
        CONF_PHASE_SWITCHING: bool(user_input.get(CONF_PHASE_SWITCHING, False)),
    }


def _split(user_input: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Entry data (name, ports, TLS) and options (everything else)."""
    data = {key: value for key, value in user_input.items() if key in (CONF_SITE_NAME, *CONNECTION_KEYS)}
    options = {key: value for key, value in user_input.items() if key not in data}
    if CONF_PHASES in options:
        options[CONF_PHASES] = int(options[CONF_PHASES])
    return data, options


class CariflexConfigFlow(ConfigFlow, domain=DOMAIN):
    """A site: its OCPP ports and how it treats chargers."""

    VERSION = 1
    MINOR_VERSION = 1

    _discovered: dict[str, Any]

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> CariflexOptionsFlow:
        """Site options."""
        return CariflexOptionsFlow()

    @classmethod
    @callback
    def async_get_supported_subentry_types(cls, config_entry: ConfigEntry) -> dict[str, type[ConfigSubentryFlow]]:
        """Chargers are sub-entries of a site."""
        return {
            SUBENTRY_CHARGER: ChargerSubentryFlow,
            SUBENTRY_METER: MeterSubentryFlow,
            SUBENTRY_BOARD: BoardSubentryFlow,
        }

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Create a site."""
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = await _validate_connection(self.hass, user_input, None)
            if not errors:
                data, options = _split(user_input)
                return self.async_create_entry(title=user_input[CONF_SITE_NAME], data=data, options=options)
        defaults = user_input or {}
        schema = vol.Schema(
            {
                vol.Required(CONF_SITE_NAME, default=defaults.get(CONF_SITE_NAME, "")): str,
                **_connection_schema(defaults),
                **_site_options_schema(defaults),
            }
        )
        return self.async_show_form(step_id="user", data_schema=schema, errors=errors)

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Change the ports or the certificate of a site."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = await _validate_connection(self.hass, user_input, entry)
            if not errors:
                # Replace the connection settings (a cleared certificate must go); the update
                # listener reloads the site once.
                data = {key: value for key, value in entry.data.items() if key not in CONNECTION_KEYS}
                self.hass.config_entries.async_update_entry(entry, data={**data, **user_input})
                return self.async_abort(reason="reconfigure_successful")
        defaults = user_input or dict(entry.data)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=vol.Schema(_connection_schema(defaults)),
            errors=errors,
            description_placeholders={"site": entry.title},
        )

    async def async_step_integration_discovery(self, discovery_info: dict[str, Any]) -> ConfigFlowResult:
        """An unknown charger knocked at a site that asks before accepting."""
        charger_id = str(discovery_info[CONF_CHARGER_ID])
        await self.async_set_unique_id(f"{discovery_info['entry_id']}_{charger_id}")
        self._abort_if_unique_id_configured()
        entry = self.hass.config_entries.async_get_entry(discovery_info["entry_id"])
        if entry is None:
            return self.async_abort(reason="site_not_found")
        if any(sub.unique_id == charger_id for sub in entry.subentries.values()):
            return self.async_abort(reason="already_configured")
        self._discovered = {"entry_id": entry.entry_id, CONF_CHARGER_ID: charger_id, "site": entry.title}
        self.context["title_placeholders"] = {"charger": charger_id}
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Let the user accept the charger."""
        charger_id = self._discovered[CONF_CHARGER_ID]
        if user_input is not None:
            entry = self.hass.config_entries.async_get_entry(self._discovered["entry_id"])
            if entry is None:
                return self.async_abort(reason="site_not_found")
            if not any(sub.unique_id == charger_id for sub in entry.subentries.values()):
                self.hass.config_entries.async_add_subentry(
                    entry,
                    ConfigSubentry(
                        data={CONF_CHARGER_ID: charger_id},  # type: ignore[arg-type]
                        subentry_type=SUBENTRY_CHARGER,
                        title=user_input.get("name") or charger_id,
                        unique_id=charger_id,
                    ),
                )
            return self.async_abort(reason="charger_added", description_placeholders={"charger": charger_id})
        return self.async_show_form(
            step_id="discovery_confirm",
            data_schema=vol.Schema({vol.Optional("name", default=charger_id): str}),
            description_placeholders={"charger": charger_id, "site": self._discovered["site"]},
        )


class CariflexOptionsFlow(OptionsFlow):
    """Site options, in four pages: the site and its meters, PV surplus, the ZNI signal, tariffs."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Which settings to change."""
        return self.async_show_menu(step_id="init", menu_options=["site", "pv", "zni", "tariffs", "cloud"])

    def _save(self, values: dict[str, Any], page: vol.Schema) -> ConfigFlowResult:
        """The options with this ``page``'s fields replaced by ``values`` (an emptied field is removed)."""
        keys = {str(key) for key in page.schema}
        options = {key: value for key, value in self.config_entry.options.items() if key not in keys}
        options.update({key: value for key, value in values.items() if value not in (None, "")})
        return self.async_create_entry(data=options)

    async def async_step_site(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Unknown chargers, badges, the grid connection and the energy manager's inputs."""
        schema = vol.Schema(
            {
                **_site_options_schema(dict(self.config_entry.options)),
                **_ems_options_schema(dict(self.config_entry.options)),
            }
        )
        if user_input is not None:
            _data, options = _split(user_input)
            return self._save(options, schema)
        return self.async_show_form(step_id="site", data_schema=schema)

    async def async_step_pv(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """PV surplus: the reserve kept for the site, start and stop delays, the home battery."""
        schema = vol.Schema(_pv_options_schema(dict(self.config_entry.options)))
        if user_input is not None:
            return self._save(user_input, schema)
        return self.async_show_form(step_id="pv", data_schema=schema)

    async def async_step_zni(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The EDF-SEI grid signal of island grids: its source, the cap it imposes, the safe default."""
        schema = vol.Schema(_zni_options_schema(dict(self.config_entry.options)))
        errors: dict[str, str] = {}
        placeholders = {"detail": ""}
        if user_input is not None:
            remote = [user_input.get(key) for key in (CONF_ZNI_URL, CONF_ZNI_DATASET)]
            if any(remote) and not all(remote):
                errors["base"] = "zni_incomplete_source"
            elif user_input.get(CONF_ZNI_ENABLED) and not user_input.get(CONF_ZNI_ENTITY) and not all(remote):
                errors["base"] = "zni_no_source"
            else:
                try:
                    if all(remote):
                        zni_portal_client(self.hass, user_input)
                except SignalConfigError as err:
                    errors["base"] = "zni_invalid_portal"
                    placeholders["detail"] = str(err)
                else:
                    return self._save(user_input, schema)
        return self.async_show_form(
            step_id="zni",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_cloud(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The Cariflex cloud connector: its address, the site's token, where the site is."""
        schema = vol.Schema(_cloud_options_schema(dict(self.config_entry.options)))
        errors: dict[str, str] = {}
        if user_input is not None:
            url = str(user_input.get(CONF_CLOUD_URL) or "").strip()
            country = str(user_input.get(CONF_CLOUD_COUNTRY, "")).strip().upper()
            if url and not url.startswith(("ws://", "wss://")):
                errors[CONF_CLOUD_URL] = "invalid_cloud_url"
            elif not re.fullmatch(r"[A-Z]{3}", country):
                errors[CONF_CLOUD_COUNTRY] = "invalid_country"
            elif bool(url) != bool(user_input.get(CONF_CLOUD_TOKEN)):
                errors["base"] = "cloud_incomplete"
            elif url and not (user_input.get(CONF_CLOUD_ADDRESS) and user_input.get(CONF_CLOUD_CITY)):
                errors["base"] = "cloud_address_required"  # OCPI publishes every charger with its address
            else:
                values = {**user_input, CONF_CLOUD_URL: url, CONF_CLOUD_COUNTRY: country}
                return self._save(values, schema)
        return self.async_show_form(
            step_id="cloud", data_schema=self.add_suggested_values_to_schema(schema, user_input or {}), errors=errors
        )

    async def async_step_tariffs(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Off-peak hours, Tempo and EcoWatt (entities or RTE's portal), the weekend policy, prices."""
        schema = vol.Schema(_tariff_options_schema(dict(self.config_entry.options)))
        errors: dict[str, str] = {}
        if user_input is not None:
            text = str(user_input.get(CONF_OFFPEAK_SCHEDULE) or "").strip()
            try:
                if text:
                    parse_schedule(text, self.hass.config.time_zone)
            except ScheduleError:
                errors[CONF_OFFPEAK_SCHEDULE] = "invalid_schedule"
            if error := await self._check_rte(user_input):
                errors["base"] = error
            if not errors:
                return self._save({**user_input, CONF_OFFPEAK_SCHEDULE: text}, schema)
        return self.async_show_form(
            step_id="tariffs", data_schema=self.add_suggested_values_to_schema(schema, user_input or {}), errors=errors
        )

    async def _check_rte(self, user_input: Mapping[str, Any]) -> str | None:
        """An error key when the RTE credentials given do not get a token (None: fine, or none given)."""
        client_id = str(user_input.get(CONF_RTE_CLIENT_ID) or "").strip()
        secret = str(user_input.get(CONF_RTE_CLIENT_SECRET) or "").strip()
        if not client_id and not secret:
            return None
        if not client_id or not secret:
            return "rte_credentials_incomplete"
        try:
            api = RteApi(
                async_get_clientsession(self.hass),
                client_id,
                secret,
                source="RTE",
                base_url=str(user_input.get(CONF_RTE_URL) or RTE_BASE_URL),
            )
            await api.token.get(dt_util.utcnow())
        except SignalAuthError:
            return "rte_auth_failed"
        except SignalConfigError:
            return "rte_invalid_url"
        except SignalError:
            return "rte_unreachable"
        return None


def _cloud_options_schema(defaults: Mapping[str, Any]) -> dict[vol.Marker, Any]:
    text = selector.TextSelector()
    return {
        vol.Optional(CONF_CLOUD_URL, description=_suggested(defaults, CONF_CLOUD_URL)): selector.TextSelector(
            selector.TextSelectorConfig(type=selector.TextSelectorType.URL)
        ),
        vol.Optional(CONF_CLOUD_TOKEN, description=_suggested(defaults, CONF_CLOUD_TOKEN)): selector.TextSelector(
            selector.TextSelectorConfig(type=selector.TextSelectorType.PASSWORD)
        ),
        vol.Optional(CONF_CLOUD_ADDRESS, description=_suggested(defaults, CONF_CLOUD_ADDRESS)): text,
        vol.Optional(CONF_CLOUD_POSTAL_CODE, description=_suggested(defaults, CONF_CLOUD_POSTAL_CODE)): text,
        vol.Optional(CONF_CLOUD_CITY, description=_suggested(defaults, CONF_CLOUD_CITY)): text,
        vol.Required(CONF_CLOUD_COUNTRY, default=defaults.get(CONF_CLOUD_COUNTRY, "FRA")): str,
    }


def _suggested(defaults: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {"suggested_value": defaults.get(key)}


def _pv_options_schema(defaults: Mapping[str, Any]) -> dict[vol.Marker, Any]:
    return {
        vol.Required(CONF_PV_RESERVE, default=defaults.get(CONF_PV_RESERVE, 0)): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=100_000)
        ),
        vol.Required(CONF_PV_ENABLE_DELAY, default=defaults.get(CONF_PV_ENABLE_DELAY, 60)): vol.All(
            vol.Coerce(int), vol.Range(min=0, max=3600)
        ),
        vol.Required(CONF_PV_DISABLE_DELAY, default=defaults.get(CONF_PV_DISABLE_DELAY, 180)): vol.All(
            vol.Coerce(int), vol.Range(min=0, max=3600)
        ),
        vol.Required(CONF_BATTERY_PRIORITY_SOC, default=defaults.get(CONF_BATTERY_PRIORITY_SOC, 100)): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=100)
        ),
        vol.Optional(
            CONF_PV_FORECAST_ENTITY, description=_suggested(defaults, CONF_PV_FORECAST_ENTITY)
        ): selector.EntitySelector(selector.EntitySelectorConfig(domain="sensor")),
    }


def _zni_options_schema(defaults: Mapping[str, Any]) -> dict[vol.Marker, Any]:
    return {
        vol.Required(CONF_ZNI_ENABLED, default=defaults.get(CONF_ZNI_ENABLED, False)): bool,
        vol.Optional(CONF_ZNI_ENTITY, description=_suggested(defaults, CONF_ZNI_ENTITY)): selector.EntitySelector(
            selector.EntitySelectorConfig(domain=["binary_sensor", "sensor", "input_boolean", "input_number"])
        ),
        vol.Required(CONF_ZNI_FRACTION, default=defaults.get(CONF_ZNI_FRACTION, 50)): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=100)
        ),
        vol.Optional(CONF_ZNI_MAX_SESSIONS, description=_suggested(defaults, CONF_ZNI_MAX_SESSIONS)): vol.All(
            vol.Coerce(int), vol.Range(min=0, max=10_000)
        ),
        vol.Required(
            CONF_ZNI_SAFE_DEFAULT, default=str(defaults.get(CONF_ZNI_SAFE_DEFAULT, 0))
        ): selector.SelectSelector(
            selector.SelectSelectorConfig(options=["0", "1"], translation_key=CONF_ZNI_SAFE_DEFAULT)
        ),
        vol.Optional(CONF_ZNI_URL, description=_suggested(defaults, CONF_ZNI_URL)): selector.TextSelector(
            selector.TextSelectorConfig(type=selector.TextSelectorType.URL)
        ),
        vol.Optional(CONF_ZNI_DATASET, description=_suggested(defaults, CONF_ZNI_DATASET)): str,
        vol.Optional(CONF_ZNI_API_KEY, description=_suggested(defaults, CONF_ZNI_API_KEY)): selector.TextSelector(
            selector.TextSelectorConfig(type=selector.TextSelectorType.PASSWORD)
        ),
        vol.Required(CONF_ZNI_TIME_FIELD, default=defaults.get(CONF_ZNI_TIME_FIELD, "horodate")): str,
        vol.Required(CONF_ZNI_VALUE_FIELD, default=defaults.get(CONF_ZNI_VALUE_FIELD, "signal")): str,
        vol.Optional(CONF_ZNI_TERRITORY, description=_suggested(defaults, CONF_ZNI_TERRITORY)): str,
        vol.Optional(CONF_ZNI_TERRITORY_FIELD, description=_suggested(defaults, CONF_ZNI_TERRITORY_FIELD)): str,
    }


def _tariff_options_schema(defaults: Mapping[str, Any]) -> dict[vol.Marker, Any]:
    return {
        vol.Optional(CONF_OFFPEAK_SCHEDULE, description=_suggested(defaults, CONF_OFFPEAK_SCHEDULE)): str,
        vol.Optional(
            CONF_OFFPEAK_ENTITY, description=_suggested(defaults, CONF_OFFPEAK_ENTITY)
        ): selector.EntitySelector(
            selector.EntitySelectorConfig(domain=["binary_sensor", "input_boolean", "schedule"])
        ),
        vol.Required(
            CONF_TARIFF_WEEKEND, default=defaults.get(CONF_TARIFF_WEEKEND, TARIFF_WEEKEND_SAME)
        ): selector.SelectSelector(
            selector.SelectSelectorConfig(
                options=[TARIFF_WEEKEND_SAME, *(policy.value for policy in TariffPolicy)],
                translation_key=CONF_TARIFF_WEEKEND,
            )
        ),
        vol.Optional(CONF_TEMPO_ENTITY, description=_suggested(defaults, CONF_TEMPO_ENTITY)): selector.EntitySelector(
            selector.EntitySelectorConfig(domain=["sensor", "input_select", "select"])
        ),
        vol.Optional(
            CONF_ECOWATT_ENTITY, description=_suggested(defaults, CONF_ECOWATT_ENTITY)
        ): selector.EntitySelector(selector.EntitySelectorConfig(domain=["sensor", "input_select", "input_number"])),
        vol.Optional(CONF_RTE_CLIENT_ID, description=_suggested(defaults, CONF_RTE_CLIENT_ID)): str,
        vol.Optional(
            CONF_RTE_CLIENT_SECRET, description=_suggested(defaults, CONF_RTE_CLIENT_SECRET)
        ): selector.TextSelector(selector.TextSelectorConfig(type=selector.TextSelectorType.PASSWORD)),
        vol.Optional(CONF_RTE_URL, description=_suggested(defaults, CONF_RTE_URL)): selector.TextSelector(
            selector.TextSelectorConfig(type=selector.TextSelectorType.URL)
        ),
        vol.Optional(CONF_PRICE_PEAK, description=_suggested(defaults, CONF_PRICE_PEAK)): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=10)
        ),
        vol.Optional(CONF_PRICE_OFFPEAK, description=_suggested(defaults, CONF_PRICE_OFFPEAK)): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=10)
        ),
        vol.Optional(CONF_PRICE_FEED_IN, description=_suggested(defaults, CONF_PRICE_FEED_IN)): vol.All(
            vol.Coerce(float), vol.Range(min=0, max=10)
        ),
        vol.Required(
            CONF_PLANNER_GOAL, default=defaults.get(CONF_PLANNER_GOAL, PLANNER_GOAL_COST)
        ): selector.SelectSelector(
            selector.SelectSelectorConfig(
                options=[PLANNER_GOAL_COST, PLANNER_GOAL_IMPORT], translation_key=CONF_PLANNER_GOAL
            )
        ),
        vol.Required(
            CONF_PLANNER_TIME_LIMIT, default=defaults.get(CONF_PLANNER_TIME_LIMIT, DEFAULT_PLANNER_TIME_LIMIT)
        ): selector.NumberSelector(
            selector.NumberSelectorConfig(
                min=1, max=60, step=1, unit_of_measurement="s", mode=selector.NumberSelectorMode.BOX
            )
        ),
    }


class ChargerSubentryFlow(ConfigSubentryFlow):
    """A charger of the site: its id, name, password (security profile 1/2) and max current."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Declare a charger before it connects."""
        errors: dict[str, str] = {}
        entry = self._get_entry()
        if user_input is not None:
            charger_id = user_input[CONF_CHARGER_ID].strip()
            if not charger_id or "/" in charger_id or len(charger_id) > 48:
                errors[CONF_CHARGER_ID] = "invalid_charger_id"
            elif any(sub.unique_id == charger_id for sub in entry.subentries.values()):
                errors[CONF_CHARGER_ID] = "charger_exists"
            else:
                data: dict[str, Any] = {
                    CONF_CHARGER_ID: charger_id,
                    CONF_MAX_CURRENT: user_input[CONF_MAX_CURRENT],
                    **_charger_ems_data(user_input),
                }
                if password := user_input.get(CONF_PASSWORD):
                    data[CONF_PASSWORD_HASH] = await self.hass.async_add_executor_job(hash_password, password)
                return self.async_create_entry(
                    title=user_input.get("name") or charger_id, data=data, unique_id=charger_id
                )
        return self.async_show_form(
            step_id="user",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_CHARGER_ID): str,
                    vol.Optional("name"): str,
                    vol.Optional(CONF_PASSWORD): selector.TextSelector(
                        selector.TextSelectorConfig(type=selector.TextSelectorType.PASSWORD)
                    ),
                    vol.Required(CONF_MAX_CURRENT, default=DEFAULT_MAX_CURRENT): vol.All(
                        vol.Coerce(float), vol.Range(min=6, max=500)
                    ),
                    **_charger_ems_schema({}, entry),
                }
            ),
            errors=errors,
        )

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Change a charger's password or maximum current."""
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        if user_input is not None:
            data = dict(subentry.data)
            data[CONF_MAX_CURRENT] = user_input[CONF_MAX_CURRENT]
            data.update(_charger_ems_data(user_input))
            if user_input.get("clear_password"):
                data.pop(CONF_PASSWORD_HASH, None)
            elif password := user_input.get(CONF_PASSWORD):
                data[CONF_PASSWORD_HASH] = await self.hass.async_add_executor_job(hash_password, password)
            return self.async_update_and_abort(entry, subentry, data=data)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=vol.Schema(
                {
                    vol.Optional(CONF_PASSWORD): selector.TextSelector(
                        selector.TextSelectorConfig(type=selector.TextSelectorType.PASSWORD)
                    ),
                    vol.Optional("clear_password", default=False): bool,
                    vol.Required(
                        CONF_MAX_CURRENT, default=subentry.data.get(CONF_MAX_CURRENT, DEFAULT_MAX_CURRENT)
                    ): vol.All(vol.Coerce(float), vol.Range(min=6, max=500)),
                    **_charger_ems_schema(subentry.data, entry),
                }
            ),
            description_placeholders={"charger": subentry.data[CONF_CHARGER_ID]},
        )


ROLE_SELECTOR = selector.SelectSelector(
    selector.SelectSelectorConfig(
        options=list(METER_ROLES), translation_key=CONF_ROLE, mode=selector.SelectSelectorMode.LIST
    )
)


async def _probe_meter(hass: HomeAssistant, data: dict[str, Any]) -> str | None:
    """Read the device once with its profile; the error key, or None when it answers."""
    profile = await async_load_profile(hass, data[CONF_PROFILE])
    device = make_device(profile, data)
    try:
        reading = await device.read()
    except ModbusConnectionError:
        return "cannot_connect"
    except ModbusError:
        return "invalid_response"
    finally:
        await device.close()
    if all(reading.get(quantity) is None for quantity in profile.quantities):
        return "invalid_response"
    return None


class MeterSubentryFlow(ConfigSubentryFlow):
    """A Modbus meter, PV inverter or battery of the site: Modbus TCP (or RTU through a gateway) or RTU on a serial port."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """How the device is wired: over the network or on a local serial port (RS485 adapter)."""
        return self.async_show_menu(step_id="user", menu_options=["tcp", "serial"])

    async def async_step_tcp(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Modbus TCP, or RTU frames through a transparent RS485-Ethernet gateway."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {
                CONF_HOST: user_input[CONF_HOST].strip(),
                CONF_PORT: int(user_input[CONF_PORT]),
                CONF_RTU_FRAMING: bool(user_input.get(CONF_RTU_FRAMING, False)),
            }
            unique_id = f"{data[CONF_HOST]}:{data[CONF_PORT]}/{int(user_input[CONF_UNIT_ID])}"
            device = self._device(user_input, data)
            if not (errors := await self._errors(device, unique_id)):
                title = user_input.get("name") or f"{user_input[CONF_PROFILE]} {data[CONF_HOST]}"
                return self.async_create_entry(title=title, data=device, unique_id=unique_id)
        defaults = user_input or {}
        return self.async_show_form(
            step_id="tcp",
            data_schema=vol.Schema(
                {
                    **await self._device_schema(defaults),
                    vol.Required(CONF_HOST, default=defaults.get(CONF_HOST, "")): str,
                    vol.Required(CONF_PORT, default=defaults.get(CONF_PORT, DEFAULT_MODBUS_PORT)): vol.All(
                        vol.Coerce(int), vol.Range(min=1, max=65535)
                    ),
                    vol.Required(CONF_UNIT_ID, default=defaults.get(CONF_UNIT_ID, 1)): vol.All(
                        vol.Coerce(int), vol.Range(min=0, max=255)
                    ),
                    vol.Required(CONF_ROLE, default=defaults.get(CONF_ROLE, ROLE_GRID)): ROLE_SELECTOR,
                    vol.Optional(CONF_RTU_FRAMING, default=defaults.get(CONF_RTU_FRAMING, False)): bool,
                }
            ),
            errors=errors,
        )

    async def async_step_serial(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Modbus RTU on a serial port of the Home Assistant host (USB-RS485 adapter)."""
        errors: dict[str, str] = {}
        if user_input is not None:
            data = {
                CONF_SERIAL_PORT: user_input[CONF_SERIAL_PORT].strip(),
                CONF_BAUDRATE: int(user_input[CONF_BAUDRATE]),
                CONF_PARITY: PARITIES[user_input[CONF_PARITY]],
                CONF_STOPBITS: int(user_input[CONF_STOPBITS]),
                CONF_BYTESIZE: int(user_input[CONF_BYTESIZE]),
            }
            unique_id = f"serial:{data[CONF_SERIAL_PORT]}/{int(user_input[CONF_UNIT_ID])}"
            device = self._device(user_input, data)
            if not (errors := await self._errors(device, unique_id)):
                title = user_input.get("name") or f"{user_input[CONF_PROFILE]} {data[CONF_SERIAL_PORT]}"
                return self.async_create_entry(title=title, data=device, unique_id=unique_id)
        defaults = user_input or {}
        return self.async_show_form(
            step_id="serial",
            data_schema=vol.Schema(
                {
                    **await self._device_schema(defaults),
                    vol.Required(CONF_SERIAL_PORT, default=defaults.get(CONF_SERIAL_PORT, "/dev/ttyUSB0")): str,
                    vol.Required(CONF_BAUDRATE, default=str(defaults.get(CONF_BAUDRATE, 9600))): SERIAL_CHOICES[
                        CONF_BAUDRATE
                    ],
                    vol.Required(CONF_PARITY, default=defaults.get(CONF_PARITY, "none")): SERIAL_CHOICES[CONF_PARITY],
                    vol.Required(CONF_STOPBITS, default=str(defaults.get(CONF_STOPBITS, 1))): SERIAL_CHOICES[
                        CONF_STOPBITS
                    ],
                    vol.Required(CONF_BYTESIZE, default=str(defaults.get(CONF_BYTESIZE, 8))): SERIAL_CHOICES[
                        CONF_BYTESIZE
                    ],
                    vol.Required(CONF_UNIT_ID, default=defaults.get(CONF_UNIT_ID, 1)): vol.All(
                        vol.Coerce(int), vol.Range(min=0, max=247)
                    ),
                    vol.Required(CONF_ROLE, default=defaults.get(CONF_ROLE, ROLE_GRID)): ROLE_SELECTOR,
                }
            ),
            errors=errors,
        )

    async def _device_schema(self, defaults: Mapping[str, Any]) -> dict[vol.Marker, Any]:
        profiles = await self.hass.async_add_executor_job(available_profiles)
        return {
            vol.Optional("name", description={"suggested_value": defaults.get("name")}): str,
            vol.Required(CONF_PROFILE, default=defaults.get(CONF_PROFILE, profiles[0])): selector.SelectSelector(
                selector.SelectSelectorConfig(options=profiles, mode=selector.SelectSelectorMode.DROPDOWN)
            ),
        }

    @staticmethod
    def _device(user_input: Mapping[str, Any], link: Mapping[str, Any]) -> dict[str, Any]:
        """The sub-entry's data: the profile, how to reach the device, its unit and role."""
        return {
            CONF_PROFILE: user_input[CONF_PROFILE],
            **link,
            CONF_UNIT_ID: int(user_input[CONF_UNIT_ID]),
            CONF_ROLE: user_input[CONF_ROLE],
        }

    async def _errors(self, data: dict[str, Any], unique_id: str) -> dict[str, str]:
        """Why the device cannot be added (empty when it answers and is new)."""
        entry = self._get_entry()
        if any(sub.unique_id == unique_id for sub in entry.subentries.values()):
            return {"base": "meter_exists"}
        if data[CONF_ROLE] == ROLE_GRID and any(
            sub.subentry_type == SUBENTRY_METER and sub.data.get(CONF_ROLE) == ROLE_GRID
            for sub in entry.subentries.values()
        ):
            return {CONF_ROLE: "grid_meter_exists"}
        if error := await _probe_meter(self.hass, data):
            return {"base": error}
        return {}


PARITIES: dict[str, str] = {"none": "N", "even": "E", "odd": "O"}  # choice -> pyserial letter


def _serial_choice(options: list[str], translation_key: str | None = None) -> selector.SelectSelector:
    config = selector.SelectSelectorConfig(options=options, mode=selector.SelectSelectorMode.DROPDOWN)
    if translation_key:
        config["translation_key"] = translation_key
    return selector.SelectSelector(config)


SERIAL_CHOICES: dict[str, selector.SelectSelector] = {
    CONF_BAUDRATE: _serial_choice([str(rate) for rate in BAUDRATES]),
    CONF_PARITY: _serial_choice(list(PARITIES), CONF_PARITY),
    CONF_STOPBITS: _serial_choice(["1", "2"]),
    CONF_BYTESIZE: _serial_choice(["8", "7"]),
}


def _board_schema(defaults: Mapping[str, Any]) -> dict[vol.Marker, Any]:
    return {
        vol.Optional(CONF_BOARD_CURRENT, description={"suggested_value": defaults.get(CONF_BOARD_CURRENT)}): vol.All(
            vol.Coerce(float), vol.Range(min=1, max=5000)
        ),
        vol.Optional(CONF_BOARD_POWER, description={"suggested_value": defaults.get(CONF_BOARD_POWER)}): vol.All(
            vol.Coerce(float), vol.Range(min=0.1, max=100_000)
        ),
        vol.Optional(
            CONF_BOARD_METER, description={"suggested_value": defaults.get(CONF_BOARD_METER)}
        ): selector.EntitySelector(selector.EntitySelectorConfig(domain="sensor", device_class="power")),
    }


def _board_data(user_input: dict[str, Any]) -> dict[str, Any]:
    data = {
        key: user_input[key] for key in (CONF_BOARD_CURRENT, CONF_BOARD_POWER, CONF_BOARD_METER) if user_input.get(key)
    }
    if not (CONF_BOARD_CURRENT in data or CONF_BOARD_POWER in data):
        raise vol.Invalid("a board needs a current or a power limit")
    return data


class BoardSubentryFlow(ConfigSubentryFlow):
    """A sub-board (TD) or a group of chargers with its own limit, and optionally its own meter."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Name, parent board, limits, meter."""
        entry = self._get_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                data = _board_data(user_input)
            except vol.Invalid:
                errors["base"] = "no_limit"
            else:
                data[CONF_PARENT] = user_input.get(CONF_PARENT, SITE_BOARD)
                return self.async_create_entry(title=user_input["name"], data=data)
        return self.async_show_form(
            step_id="user",
            data_schema=vol.Schema(
                {
                    vol.Required("name"): str,
                    vol.Required(CONF_PARENT, default=SITE_BOARD): selector.SelectSelector(
                        selector.SelectSelectorConfig(
                            options=_board_options(entry), mode=selector.SelectSelectorMode.DROPDOWN
                        )
                    ),
                    **_board_schema(user_input or {}),
                }
            ),
            errors=errors,
        )

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Change the limits or the meter of a board (its place in the tree stays)."""
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        errors: dict[str, str] = {}
        if user_input is not None:
            try:
                data = _board_data(user_input)
            except vol.Invalid:
                errors["base"] = "no_limit"
            else:
                data[CONF_PARENT] = subentry.data.get(CONF_PARENT, SITE_BOARD)
                return self.async_update_and_abort(entry, subentry, data=data)
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=vol.Schema(_board_schema(subentry.data)),
            errors=errors,
            description_placeholders={"board": subentry.title},
        )
