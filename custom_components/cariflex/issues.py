"""Repair issues of a site: raised when their condition starts, cleared when it ends."""

from __future__ import annotations

from collections.abc import Mapping

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN


class RepairIssue:
    """One repair issue of a site entry (translated under ``issues.<key>``).

    :meth:`set` follows a condition cycle after cycle and touches the registry only when it
    changes; the placeholders are those of the moment the issue is raised.
    """

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        key: str,
        severity: ir.IssueSeverity = ir.IssueSeverity.WARNING,
        *,
        suffix: str | None = None,
    ) -> None:
        self.hass = hass
        self.key = key
        self.issue_id = f"{key}_{entry_id}" if suffix is None else f"{key}_{entry_id}_{suffix}"
        """``<key>_<entry id>``, or ``<key>_<entry id>_<suffix>`` for one of several (a charger's):
        :func:`async_delete_entry_issues` relies on this form."""
        self.severity = severity
        # An issue raised before a restart is still in the registry: clearing it must remove it.
        self.open = ir.async_get(hass).async_get_issue(DOMAIN, self.issue_id) is not None

    @callback
    def set(self, active: bool, placeholders: Mapping[str, str] | None = None) -> bool:
        """Raise the issue while ``active``, clear it otherwise; True when that changed it."""
        if active == self.open:
            return False
        if active:
            ir.async_create_issue(
                self.hass,
                DOMAIN,
                self.issue_id,
                is_fixable=False,
                severity=self.severity,
                translation_key=self.key,
                translation_placeholders=dict(placeholders or {}),
            )
        else:
            ir.async_delete_issue(self.hass, DOMAIN, self.issue_id)
        self.open = active
        return True


@callback
def async_delete_entry_issues(hass: HomeAssistant, entry_id: str) -> None:
    """Delete every repair issue of a site entry (the site is deleted: they outlive restarts, not it)."""
    for domain, issue_id in list(ir.async_get(hass).issues):
        if domain == DOMAIN and (issue_id.endswith(f"_{entry_id}") or f"_{entry_id}_" in issue_id):
            ir.async_delete_issue(hass, DOMAIN, issue_id)
