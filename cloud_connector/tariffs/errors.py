"""Exceptions of the tariff pricing engine: one base class, one subclass per kind of bad input."""

from __future__ import annotations


class TariffError(ValueError):
    """Base class of every error raised by ``cloud_connector.tariffs``."""


class InvalidTariffError(TariffError):
    """The OCPI Tariff JSON is malformed or breaks a rule of OCPI 2.2.1 (the message names the field)."""


class TariffNotApplicableError(TariffError):
    """The tariff cannot price this session: outside its validity dates, or a different currency."""


class InvalidSessionError(TariffError):
    """The session input (meter curve, times, reservation, or CDR charging periods) is unusable."""
