"""Devices' energy figures for the SynOps report: ``E = e_AC * SynOps + e_MAC * MACs``.

The default ``"horowitz_45nm"`` is 0.9 pJ per accumulate and 4.6 pJ per multiply-accumulate
(45 nm CMOS, Horowitz 2014); others are registered with :func:`register_device`. (How each
layer is read for SynOps is in the registry of layer kinds, :mod:`tandem_keras.kinds`.)

Example:
    >>> import tandem_keras as tk
    >>> _ = tk.register_device("my_chip", energy_per_ac=0.1e-12, energy_per_mac=1e-12)
    >>> tk.synops.devices.get_device("my_chip").energy_per_ac
    1e-13
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Union


@dataclasses.dataclass(frozen=True)
class Device:
    """Energy per operation of a device, in joules: ``E = e_AC * ACs + e_MAC * MACs``."""

    name: str
    energy_per_ac: float
    energy_per_mac: float
    description: str = ""


_DEVICES: dict[str, Device] = {}

#: Name of the default device.
DEFAULT_DEVICE = "horowitz_45nm"


def register_device(name: str, energy_per_ac: float, energy_per_mac: float,
                    description: str = "") -> Device:
    """Registers a device's energy per accumulate and per multiply-accumulate (joules).

    Raises:
      ValueError: an empty name, or an energy that is negative or not finite.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_device: name must be a non-empty string, got {name!r}")
    for what, value in (("energy_per_ac", energy_per_ac), ("energy_per_mac", energy_per_mac)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"register_device({name!r}): {what} must be a finite number >= 0 "
                             f"(joules), got {value!r}")
    device = Device(name, float(energy_per_ac), float(energy_per_mac), description)
    _DEVICES[name] = device
    return device


def get_device(device: Union[None, str, Device] = None) -> Device:
    """A registered device by name (``None``: :data:`DEFAULT_DEVICE`), or ``device`` itself."""
    if isinstance(device, Device):
        return device
    name = DEFAULT_DEVICE if device is None else device
    if name not in _DEVICES:
        raise ValueError(f"unknown device {name!r}; registered: {', '.join(sorted(_DEVICES))}")
    return _DEVICES[name]


def devices() -> list[str]:
    """Names of the registered devices."""
    return sorted(_DEVICES)


def energy_joules(accumulates: float = 0.0, multiply_accumulates: float = 0.0,
                  device: Any = None) -> float:
    """Energy estimate ``e_AC * ACs + e_MAC * MACs`` (joules) on a registered device.

    Example:
        >>> round(energy_joules(1e6, 1e6) * 1e6, 6)   # microjoules, default device
        5.5
    """
    d = get_device(device)
    return d.energy_per_ac * float(accumulates) + d.energy_per_mac * float(multiply_accumulates)


register_device(DEFAULT_DEVICE, 0.9e-12, 4.6e-12,
                "45 nm CMOS, 32-bit float add / multiply-add (Horowitz 2014)")
