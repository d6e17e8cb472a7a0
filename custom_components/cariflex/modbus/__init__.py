"""Modbus input layer of the energy manager: meters, PV inverters and batteries.

Pure Python on top of pymodbus (>= 3.8.3); never imports Home Assistant.

* :mod:`.profiles`: register maps kept as JSON data in ``profiles/`` and their validator;
* :mod:`.client`: :class:`ModbusDevice`, an async reader (Modbus TCP, RTU over TCP, RTU
  serial) with batching, timeouts, one retry, reconnection and SunSpec discovery;
* :mod:`.models`: the fixed set of quantities and the typed :class:`Reading`;
* :mod:`.simulator`: :class:`ProfileSimulator`, a real pymodbus server serving a profile;
* :mod:`.errors`: ``ModbusConnectionError``, ``ModbusResponseError``, ``ProfileError``.
"""

from __future__ import annotations

from .client import TCP, ModbusDevice, ReadBlock, Serial, SunSpecModelInstance, Transport, plan_blocks
from .errors import ModbusConnectionError, ModbusError, ModbusResponseError, ProfileError
from .models import Quantity, Reading
from .profiles import (
    DataType,
    Profile,
    RegisterSpec,
    RegisterType,
    WordOrder,
    available_profiles,
    generic_profile,
    load_all_profiles,
    load_profile,
    profile_from_dict,
)

__all__ = [
    "TCP",
    "DataType",
    "ModbusConnectionError",
    "ModbusDevice",
    "ModbusError",
    "ModbusResponseError",
    "Profile",
    "ProfileError",
    "Quantity",
    "ReadBlock",
    "Reading",
    "RegisterSpec",
    "RegisterType",
    "Serial",
    "SunSpecModelInstance",
    "Transport",
    "WordOrder",
    "available_profiles",
    "generic_profile",
    "load_all_profiles",
    "load_profile",
    "plan_blocks",
    "profile_from_dict",
]
