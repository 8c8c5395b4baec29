"""Non-Modbus field devices of the range (DNP3 RTU, IEC 104 RTU, S7 SIS) and the HMI's masters.

See :mod:`.base` for the interface; the device modules import their peer library (dnp3py, c104,
python-snap7) only when a device starts, so importing this package needs none of them.
"""

from interlock.range.devices.base import (
    Command,
    DevicePoint,
    DeviceSpec,
    FieldDevice,
    build_device,
    load_device_specs,
    load_field_devices,
)

__all__ = [
    "Command",
    "DevicePoint",
    "DeviceSpec",
    "FieldDevice",
    "build_device",
    "load_device_specs",
    "load_field_devices",
]
