"""The demo site's Modbus devices: a grid meter and a PV inverter that follow the chargers.

Two real Modbus TCP servers (pymodbus, through :class:`ProfileSimulator`) on 127.0.0.1:

* the grid meter, an Eastron SDM630 (unit 1): what the site imports (+) or exports (-), that
  is the household load + what the simulated cars draw - the PV production;
* a SunSpec three-phase inverter (models 1 + 103, unit 1): a clear-sky PV curve.

The household load follows a daily shape with an appliance spike (an oven, 3 kW for 45 s
every 4 minutes), so the energy manager has something to react to. The sun runs on a
*solar clock* that starts at ``solar_start`` (hours, 11.5 = 11:30) and advances in real
time, so a demo started at night still shows production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import math
import time

from custom_components.cariflex.modbus.models import Quantity
from custom_components.cariflex.modbus.profiles import load_profile
from custom_components.cariflex.modbus.simulator import ProfileSimulator

VOLTAGE_V = 230.0
FREQUENCY_HZ = 50.0
SPIKE_EVERY_S = 240.0
SPIKE_LENGTH_S = 45.0


@dataclass(frozen=True, slots=True)
class SiteShape:
    """The simulated site: PV peak, household base load and appliance spike (W)."""

    pv_peak_w: float = 8000.0
    base_load_w: float = 1200.0
    spike_w: float = 3000.0
    sunrise_h: float = 7.0
    sunset_h: float = 19.0


def pv_power(shape: SiteShape, solar_hour: float) -> float:
    """A clear-sky curve: a sine between sunrise and sunset, 0 at night (W)."""
    hour = solar_hour % 24.0
    if not shape.sunrise_h < hour < shape.sunset_h:
        return 0.0
    day = (hour - shape.sunrise_h) / (shape.sunset_h - shape.sunrise_h)
    return round(shape.pv_peak_w * math.pow(math.sin(math.pi * day), 1.5), 1)


def household_load(shape: SiteShape, solar_hour: float, elapsed_s: float) -> float:
    """The non-EV load: a base with a morning and an evening bump, plus an appliance spike (W)."""
    hour = solar_hour % 24.0
    bumps = 600.0 * math.exp(-(((hour - 7.5) / 1.2) ** 2)) + 1200.0 * math.exp(-(((hour - 19.5) / 1.5) ** 2))
    spike = shape.spike_w if elapsed_s % SPIKE_EVERY_S >= SPIKE_EVERY_S - SPIKE_LENGTH_S else 0.0
    return round(shape.base_load_w + bumps + spike, 1)


class SiteMeters:
    """The demo's grid meter and PV inverter, driven by ``ev_power`` (W drawn by the cars)."""

    def __init__(
        self,
        ev_power: Callable[[], float],
        *,
        shape: SiteShape | None = None,
        solar_start: float = 11.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ev_power = ev_power
        self.shape = shape or SiteShape()
        self.solar_start = solar_start
        self.clock = clock
        self.grid = ProfileSimulator(load_profile("eastron_sdm630"))
        self.pv = ProfileSimulator(load_profile("sunspec"), sunspec_models=[1, 103])
        self._started_at = clock()
        self._last_step: float | None = None
        self.import_wh = 0.0
        self.export_wh = 0.0
        self.pv_wh = 0.0
        self.grid_w = 0.0
        self.pv_w = 0.0
        self.house_w = 0.0

    @property
    def grid_port(self) -> int:
        """The grid meter's Modbus TCP port."""
        return self.grid.port

    @property
    def pv_port(self) -> int:
        """The PV inverter's Modbus TCP port."""
        return self.pv.port

    async def start(self) -> None:
        """Open both Modbus servers (on free ports) with the first values."""
        self._started_at = self.clock()
        self.step()
        await self.grid.start()
        await self.pv.start()

    async def stop(self) -> None:
        """Close both servers."""
        await self.grid.stop()
        await self.pv.stop()

    def solar_hour(self) -> float:
        """The solar clock (hours)."""
        return self.solar_start + (self.clock() - self._started_at) / 3600.0

    def step(self) -> None:
        """Recompute every register from the cars' draw, the sun and the household."""
        now = self.clock()
        elapsed = now - self._started_at
        hour = self.solar_hour()
        if self._last_step is not None:
            hours = max(0.0, now - self._last_step) / 3600.0
            self.import_wh += max(self.grid_w, 0.0) * hours
            self.export_wh += max(-self.grid_w, 0.0) * hours
            self.pv_wh += self.pv_w * hours
        self._last_step = now
        self.pv_w = pv_power(self.shape, hour)
        self.house_w = household_load(self.shape, hour, elapsed)
        self.grid_w = round(self.house_w + max(self.ev_power(), 0.0) - self.pv_w, 1)
        per_phase = self.grid_w / 3
        self.grid.set_many(
            {
                Quantity.POWER_W: self.grid_w,
                **dict.fromkeys((Quantity.POWER_W_L1, Quantity.POWER_W_L2, Quantity.POWER_W_L3), per_phase),
                **{
                    q: round(abs(per_phase) / VOLTAGE_V, 2)
                    for q in (Quantity.CURRENT_A_L1, Quantity.CURRENT_A_L2, Quantity.CURRENT_A_L3)
                },
                **dict.fromkeys((Quantity.VOLTAGE_V_L1, Quantity.VOLTAGE_V_L2, Quantity.VOLTAGE_V_L3), VOLTAGE_V),
                Quantity.FREQUENCY_HZ: FREQUENCY_HZ,
                Quantity.ENERGY_IMPORT_WH: round(self.import_wh),
                Quantity.ENERGY_EXPORT_WH: round(self.export_wh),
            }
        )
        self.pv.set_many(
            {
                Quantity.PV_POWER_W: self.pv_w,
                **dict.fromkeys((Quantity.VOLTAGE_V_L1, Quantity.VOLTAGE_V_L2, Quantity.VOLTAGE_V_L3), VOLTAGE_V),
                Quantity.FREQUENCY_HZ: FREQUENCY_HZ,
            }
        )
