"""Constants of the Cariflex integration."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "cariflex"
MANUFACTURER: Final = "Cariflex"

CONF_SITE_NAME: Final = "site_name"
CONF_WS_PORT: Final = "ws_port"
CONF_WSS_PORT: Final = "wss_port"
CONF_CERTFILE: Final = "certfile"
CONF_KEYFILE: Final = "keyfile"
CONF_UNKNOWN_CHARGERS: Final = "unknown_chargers"
CONF_PHASES: Final = "phases"
CONF_VOLTAGE: Final = "voltage"
CONF_SUBSCRIBED_POWER: Final = "subscribed_power_kw"
CONF_AUTH_MODE: Final = "auth_mode"
CONF_HEARTBEAT_INTERVAL: Final = "heartbeat_interval"
CONF_CALL_TIMEOUT: Final = "call_timeout"

# Charger sub-entries
SUBENTRY_CHARGER: Final = "charger"
CONF_CHARGER_ID: Final = "charger_id"
CONF_PASSWORD: Final = "password"
CONF_PASSWORD_HASH: Final = "password_hash"
CONF_MAX_CURRENT: Final = "max_current"

DEFAULT_WS_PORT: Final = 9000
DEFAULT_WSS_PORT: Final = 9043
DEFAULT_PHASES: Final = 3
DEFAULT_VOLTAGE: Final = 230
DEFAULT_SUBSCRIBED_POWER: Final = 36.0
DEFAULT_HEARTBEAT_INTERVAL: Final = 300
DEFAULT_CALL_TIMEOUT: Final = 30
DEFAULT_MAX_CURRENT: Final = 32

EVENT_DATA_TRANSFER: Final = "cariflex_data_transfer"
EVENT_SESSION_ENDED: Final = "cariflex_session_ended"

STORAGE_VERSION: Final = 1
HISTORY_LIMIT: Final = 500

# Energy manager
CONF_GRID_POWER_ENTITY: Final = "grid_power_entity"
CONF_MAIN_BREAKER: Final = "main_breaker_a"
CONF_METER_FALLBACK: Final = "meter_fallback_w"
CONF_EMS_STRATEGY: Final = "ems_strategy"
CONF_EMS_CYCLE: Final = "ems_cycle_s"
CONF_PV_POWER_ENTITY: Final = "pv_power_entity"
CONF_BATTERY_POWER_ENTITY: Final = "battery_power_entity"  # discharge positive
CONF_BATTERY_SOC_ENTITY: Final = "battery_soc_entity"
CONF_BATTERY_FOR_EV: Final = "battery_for_ev"  # the home battery may discharge into the cars
CONF_GENSET_ENTITY: Final = "genset_entity"  # on while the site runs on its generator
CONF_GENSET_POWER: Final = "genset_power_kw"
CONF_MIN_CURRENT: Final = "min_current"
CONF_PRIORITY: Final = "priority"
CONF_PHASE_SWITCHING: Final = "phase_switching"
CONF_PHASE: Final = "phase"
DEFAULT_EMS_CYCLE: Final = 5
DEFAULT_MIN_CURRENT: Final = 6
METER_TIMEOUT_S: Final = 60

# Modbus devices (meter sub-entries)
SUBENTRY_METER: Final = "meter"
CONF_PROFILE: Final = "profile"
CONF_HOST: Final = "host"
CONF_PORT: Final = "port"
CONF_UNIT_ID: Final = "unit_id"
CONF_RTU_FRAMING: Final = "rtu_over_tcp"  # RTU frames through a transparent TCP gateway
CONF_SERIAL_PORT: Final = "serial_port"
CONF_BAUDRATE: Final = "baudrate"
CONF_PARITY: Final = "parity"
CONF_STOPBITS: Final = "stopbits"
CONF_BYTESIZE: Final = "bytesize"
BAUDRATES: Final = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
CONF_ROLE: Final = "role"
ROLE_GRID: Final = "grid"
ROLE_PV: Final = "pv"
ROLE_BATTERY: Final = "battery"
ROLE_GENSET: Final = "genset"
METER_ROLES: Final = ("grid", "pv", "battery", "genset", "other")
GENSET_RUNNING_W: Final = 100  # a generator's meter above this: it runs
METER_JUMP_W: Final = 1000  # a grid-meter change this large triggers a cycle at once
DEFAULT_MODBUS_PORT: Final = 502
METER_POLL_S: Final = 5

# Sub-boards (board sub-entries)
SUBENTRY_BOARD: Final = "board"
CONF_BOARD: Final = "board"
CONF_PARENT: Final = "parent"
CONF_BOARD_CURRENT: Final = "max_current_a"
CONF_BOARD_POWER: Final = "max_power_kw"
CONF_BOARD_METER: Final = "power_entity"
SITE_BOARD: Final = "site"  # the main board (TGBT) in the tree and in board choices

# Charging strategies (options: PV surplus, ZNI grid signal, tariff signals)
CONF_PV_RESERVE: Final = "pv_reserve_w"
CONF_PV_ENABLE_DELAY: Final = "pv_enable_delay_s"
CONF_PV_DISABLE_DELAY: Final = "pv_disable_delay_s"
CONF_BATTERY_PRIORITY_SOC: Final = "battery_priority_soc"
CONF_ZNI_ENABLED: Final = "zni_enabled"
CONF_ZNI_ENTITY: Final = "zni_entity"
CONF_ZNI_FRACTION: Final = "zni_fraction"
CONF_ZNI_MAX_SESSIONS: Final = "zni_max_sessions"
CONF_ZNI_SAFE_DEFAULT: Final = "zni_safe_default"
CONF_ZNI_URL: Final = "zni_base_url"
CONF_ZNI_DATASET: Final = "zni_dataset"
CONF_ZNI_API_KEY: Final = "zni_api_key"
CONF_ZNI_TIME_FIELD: Final = "zni_time_field"
CONF_ZNI_VALUE_FIELD: Final = "zni_value_field"
CONF_ZNI_TERRITORY: Final = "zni_territory"  # for a dataset that holds several territories
CONF_ZNI_TERRITORY_FIELD: Final = "zni_territory_field"
CONF_OFFPEAK_SCHEDULE: Final = "offpeak_schedule"
CONF_OFFPEAK_ENTITY: Final = "offpeak_entity"
CONF_TEMPO_ENTITY: Final = "tempo_entity"
CONF_ECOWATT_ENTITY: Final = "ecowatt_entity"
CONF_TARIFF_WEEKEND: Final = "tariff_weekend_policy"  # a site-wide policy on Saturdays and Sundays
TARIFF_WEEKEND_SAME: Final = "same"  # each charger keeps its own policy
CONF_RTE_CLIENT_ID: Final = "rte_client_id"  # the built-in Tempo and EcoWatt clients (RTE data portal)
CONF_RTE_CLIENT_SECRET: Final = "rte_client_secret"
CONF_RTE_URL: Final = "rte_base_url"
TEMPO_FETCH_S: Final = 3600  # Tempo colours: published once a day (around 10:40), read every hour
ECOWATT_FETCH_S: Final = 1800  # EcoWatt: RTE allows one request every 15 minutes
CONF_PRICE_PEAK: Final = "price_peak"  # EUR/kWh, for the planner
CONF_PRICE_OFFPEAK: Final = "price_offpeak"
CONF_PRICE_FEED_IN: Final = "price_feed_in"  # EUR/kWh the PV surplus earns on the grid (what a car's PV gives up)
CONF_PLANNER_GOAL: Final = "planner_goal"  # what the planner minimises
PLANNER_GOAL_COST: Final = "cost"  # the cost of the grid energy (prices per slot)
PLANNER_GOAL_IMPORT: Final = "grid_import"  # the grid energy itself (the cost only breaks ties)
CONF_PLANNER_TIME_LIMIT: Final = "planner_time_limit"  # seconds; the planner always returns a plan within it
DEFAULT_PLANNER_TIME_LIMIT: Final = 5.0
CONF_PV_FORECAST_ENTITY: Final = "pv_forecast_entity"
DASHBOARD_FORECAST_S: Final = 1800  # without a forecast entity: the Energy dashboard's solar forecast, every 30 min
ZNI_EVIDENCE_LIMIT: Final = 5000  # signal changes kept as Advenir evidence (about a year of ZNI events)
ZNI_FETCH_S: Final = 600  # the EDF open-data signal: every 10 minutes (10,000 requests a day)

# Cloud connector (options: the site's uplink)
CONF_CLOUD_URL: Final = "cloud_url"
CONF_CLOUD_TOKEN: Final = "cloud_token"
CONF_CLOUD_ADDRESS: Final = "address"
CONF_CLOUD_CITY: Final = "city"
CONF_CLOUD_POSTAL_CODE: Final = "postal_code"
CONF_CLOUD_COUNTRY: Final = "country"
