"""The errors of the Modbus input layer.

A short tree, so that callers catch what they can act on::

    ModbusError
    ├── ProfileError           a profile (register map) is invalid; also a ValueError
    ├── ModbusConnectionError  no answer: cannot connect, connection lost, timeout
    └── ModbusResponseError    the device answered, but with a Modbus exception or a bad frame
"""

from __future__ import annotations

#: Modbus exception codes (Modbus Application Protocol v1.1b3, §7) and their names.
EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ModbusError(Exception):
    """Base of every error raised by :mod:`custom_components.cariflex.modbus`."""


class ProfileError(ModbusError, ValueError):
    """A profile does not follow the schema; the message names the file and the faulty field."""

    def __init__(self, message: str, *, origin: str = "<profile>", path: str = "") -> None:
        self.origin = origin
        self.path = path
        where = f"{origin}: {path}: " if path else f"{origin}: "
        super().__init__(where + message)


class ModbusConnectionError(ModbusError):
    """The device could not be reached (refused, unreachable, closed, or no answer in time)."""


class ModbusResponseError(ModbusError):
    """The device answered with a Modbus exception, or with a frame we cannot use."""

    def __init__(
        self,
        message: str,
        *,
        exception_code: int | None = None,
        unit_id: int | None = None,
        address: int | None = None,
        count: int | None = None,
    ) -> None:
        self.exception_code = exception_code
        self.unit_id = unit_id
        self.address = address
        self.count = count
        super().__init__(message)

    @property
    def exception_name(self) -> str | None:
        """The name of the Modbus exception code, when there is one."""
        if self.exception_code is None:
            return None
        return EXCEPTION_NAMES.get(self.exception_code, f"exception {self.exception_code}")
