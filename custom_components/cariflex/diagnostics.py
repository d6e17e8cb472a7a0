"""Diagnostics: the site's settings and every charger's model, secrets redacted."""

from __future__ import annotations

import dataclasses
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .const import (
    CONF_CERTFILE,
    CONF_CLOUD_TOKEN,
    CONF_KEYFILE,
    CONF_PASSWORD_HASH,
    CONF_RTE_CLIENT_ID,
    CONF_RTE_CLIENT_SECRET,
    CONF_ZNI_API_KEY,
)
from .ocpp.model import Charger
from .runtime import CariflexConfigEntry

TO_REDACT = {
    CONF_PASSWORD_HASH,
    CONF_CERTFILE,
    CONF_KEYFILE,
    CONF_ZNI_API_KEY,
    CONF_CLOUD_TOKEN,
    CONF_RTE_CLIENT_ID,
    CONF_RTE_CLIENT_SECRET,
    "id_tag",
    "parent_id_tag",
    "serial",
    "meter_serial",
    "iccid",
    "imsi",
    "AuthorizationKey",
}


def _charger(charger: Charger) -> dict[str, Any]:
    return {
        "ocpp_version": charger.ocpp_version,
        "connected": charger.connected,
        "boot_status": charger.boot_status,
        "last_heartbeat": charger.last_heartbeat.isoformat() if charger.last_heartbeat else None,
        "info": dataclasses.asdict(charger.info),
        "configuration": dict(charger.configuration),
        "firmware_status": charger.firmware_status,
        "diagnostics_status": charger.diagnostics_status,
        "connectors": {
            str(cid): {
                "status": c.status.value,
                "error_code": c.error_code,
                "vendor_error_code": c.vendor_error_code,
                "readings": {
                    "power_w": c.readings.power_w,
                    "current_a": c.readings.current_a,
                    "voltage_v": c.readings.voltage_v,
                    "energy_wh": c.readings.energy_wh,
                    "soc": c.readings.soc,
                },
                "current_limit_a": c.current_limit_a,
                "limit_phases": c.limit_phases,
                "session": c.session.as_dict() if c.session else None,
            }
            for cid, c in sorted(charger.connectors.items())
        },
    }


def _signals(entry: CariflexConfigEntry) -> dict[str, Any]:
    """Where the grid and tariff signals come from, and their last errors."""
    energy = entry.runtime_data.energy
    if energy is None:
        return {}
    tariffs = energy.tariffs
    return {
        "zni": {"source": energy.zni.source, "last_error": energy.zni.last_error},
        "tempo": "entity" if tariffs.tempo_entity else ("rte" if tariffs.tempo_client else "none"),
        "ecowatt": "entity" if tariffs.ecowatt_entity else ("rte" if tariffs.ecowatt_client else "none"),
        "rte_errors": dict(tariffs.errors),
        "setpoint_refusals": energy.refusals(),
    }


async def async_get_config_entry_diagnostics(hass: HomeAssistant, entry: CariflexConfigEntry) -> dict[str, Any]:
    """Everything needed to understand a site, without its secrets."""
    runtime = entry.runtime_data
    return async_redact_data(
        {
            "entry": {"data": dict(entry.data), "options": dict(entry.options)},
            "subentries": [
                {"type": sub.subentry_type, "title": sub.title, "data": dict(sub.data)}
                for sub in entry.subentries.values()
            ],
            "transaction_counter": runtime.backend.counter.last,
            "badges": len(runtime.badges),
            "chargers": {cid: _charger(charger) for cid, charger in runtime.backend.chargers.items()},
            "recent_sessions": runtime.history[-20:],
            "charge_modes": dict(runtime.charge_modes),
            "tariff_policies": dict(runtime.tariff_policies),
            "zni_evidence": list(runtime.zni_evidence),
            "signals": _signals(entry),
        },
        TO_REDACT,
    )
