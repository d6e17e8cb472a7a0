"""Tariff signals as a per-charger strategy option: off-peak hours, Tempo red days, EcoWatt red.

The signals come already decoded (their sources are parsed elsewhere): ``is_offpeak``,
the Tempo colour of the day and the EcoWatt level, each None when unknown. A policy says
when a charger must not take energy from the grid; a charger may have a different policy on
weekends. An unknown signal does not block by itself: a missing feed must not hold a car hostage.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

type TempoColour = Literal["blue", "white", "red"]
type EcoWattLevel = Literal[1, 2, 3]


class TariffPolicy(StrEnum):
    """When a charger may take energy from the grid."""

    IGNORE = "ignore"  # whenever
    OFFPEAK = "offpeak"  # only in off-peak hours (HC)
    AVOID_RED = "avoid_red"  # not in the peak hours of a Tempo red day, not on an EcoWatt red signal
    OFFPEAK_AVOID_RED = "offpeak_avoid_red"  # both


class TariffReason(StrEnum):
    """Why a tariff policy holds a charger back."""

    OFFPEAK_WAIT = "offpeak_wait"
    TEMPO_RED = "tempo_red"
    ECOWATT_RED = "ecowatt_red"


@dataclass(frozen=True, slots=True)
class TariffState:
    """The decoded tariff signals of this moment (None: unknown)."""

    is_offpeak: bool | None = None
    tempo: TempoColour | None = None
    ecowatt: EcoWattLevel | None = None


@dataclass(frozen=True, slots=True)
class TariffOption:
    """A charger's policy on weekdays and on weekends (None: as on weekdays)."""

    weekday: TariffPolicy = TariffPolicy.IGNORE
    weekend: TariffPolicy | None = None

    def policy(self, weekend: bool) -> TariffPolicy:
        """The policy of the day."""
        return self.weekend if weekend and self.weekend is not None else self.weekday


def tariff_block(policy: TariffPolicy, state: TariffState) -> TariffReason | None:
    """Why ``policy`` forbids grid energy now, or None when it allows it.

    A Tempo red day blocks all but its known off-peak hours; EcoWatt level 3 blocks at once; an
    unknown signal does not block by itself.
    """
    if policy in (TariffPolicy.AVOID_RED, TariffPolicy.OFFPEAK_AVOID_RED):
        if state.ecowatt == 3:
            return TariffReason.ECOWATT_RED
        if state.tempo == "red" and state.is_offpeak is not True:
            return TariffReason.TEMPO_RED
    if policy in (TariffPolicy.OFFPEAK, TariffPolicy.OFFPEAK_AVOID_RED) and state.is_offpeak is False:
        return TariffReason.OFFPEAK_WAIT
    return None


__all__ = ["EcoWattLevel", "TariffOption", "TariffPolicy", "TariffReason", "TariffState", "TempoColour", "tariff_block"]
