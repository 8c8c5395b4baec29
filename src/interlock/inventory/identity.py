"""Device identity from what devices say about themselves on the wire.

Three sources, read from the ``detail`` of decoded records (the sessions keep the raw answers,
this module interprets them):

- Modbus Read Device Identification (FC 43 / MEI 14, spec 6.21): the session hands over the
  objects by their spec names (``VendorName``, ``ProductCode``, ``MajorMinorRevision``, ...).
- S7 SZL answers (read SZL, user data, CPU functions): ``detail["records"]`` holds the records as
  hex. SZL 0x0011 (module identification, 28-octet records: index, MLFB order number, module
  type, two version words) gives the order number and firmware; SZL 0x001C (component
  identification, 34-octet records: index and 32 octets of text) gives the station and module
  names, the module type and the serial number. Record layouts are those of Siemens' "System
  Software for S7-300/400, System and Standard Functions", chapter "SSL-ID W#16#xy11" and
  "W#16#xy1C", which Wireshark's s7comm dissector follows too. Long answers arrive in fragments;
  :class:`IdentityCollector` joins them before decoding.
- DNP3 device attributes (group 0, IEEE 1815-2012 11.9.3): each attribute is one g0 variation
  holding a data type and a value; 252 is the manufacturer's name, 250 the product name and
  model, 242 the software (firmware) version, 248 the serial number, 247 the user-assigned
  device name (:data:`DNP3_ATTRIBUTE_FIELDS`). They are read from a response's
  ``detail.objects`` entries of group 0 that carry a ``value``, or from decoded
  :class:`~interlock.protocols.dnp3.codec.ObjectHeader` objects
  (:func:`dnp3_attributes_from_headers`). While the DNP3 session leaves the values out of the
  record, that a master read them is kept as evidence.

Vendor is taken from Modbus ``VendorName`` or from the order number's prefix
(:data:`ORDER_NUMBER_VENDORS`). The first value seen for a field is kept; a different value
later (a firmware that changed during the capture, two devices behind one address) is kept as
a conflict, because it is exactly what an analyst needs to see.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from interlock.protocols.dnp3.codec import attribute_value

# Order number (MLFB) prefix -> vendor and product family. Siemens numbers start with a 6 and a
# two-letter product group: 6ES7 SIMATIC S7, 6ES5 SIMATIC S5, 6AV HMI panels, 6GK communication.
ORDER_NUMBER_VENDORS: tuple[tuple[str, str, str], ...] = (
    ("6ES7", "Siemens", "SIMATIC S7"),
    ("6ES5", "Siemens", "SIMATIC S5"),
    ("6AV", "Siemens", "SIMATIC HMI"),
    ("6GK", "Siemens", "SIMATIC NET"),
    ("6ED1", "Siemens", "LOGO!"),
)

# Modbus device identification objects (spec 6.21, names as the session spells them) -> field.
MODBUS_OBJECT_FIELDS: dict[str, str] = {
    "VendorName": "vendor",
    "ProductCode": "product_code",
    "MajorMinorRevision": "firmware",
    "VendorUrl": "vendor_url",
    "ProductName": "product_name",
    "ModelName": "model_name",
    "UserApplicationName": "user_application",
}

SZL_0011_RECORD = 28  # index(2) MLFB(20) BGTyp(2) Ausbg(2) Ausbe(2)
SZL_001C_RECORD = 34  # index(2) text(32)
# SZL 0x0011 record indexes: 1 the module, 6 basic hardware, 7 basic firmware
SZL_0011_MODULE, SZL_0011_HARDWARE, SZL_0011_FIRMWARE = 0x0001, 0x0006, 0x0007
# SZL 0x001C record index -> field; 6 is not defined, 9 and 10 are binary ids (not kept)
SZL_001C_FIELDS: dict[int, str] = {
    0x0001: "station_name",
    0x0002: "module_name",
    0x0003: "plant_designation",
    0x0004: "copyright",
    0x0005: "serial",
    0x0007: "module_type",
    0x0008: "memory_card_serial",
    0x000B: "location",
}
# The order of the records in an answer for "all components" (index 0): used only when a device
# zeroes the indexes (the python-snap7 server does), see decode_szl_001c.
SZL_001C_ORDER = (0x0001, 0x0002, 0x0003, 0x0004, 0x0005, 0x0007, 0x0008, 0x0009, 0x000A, 0x000B)
DNP3_G0 = '"group":0,'  # a group 0 object header in a DNP3 record's detail (compact JSON)
# DNP3 device attribute variation (g0vN, IEEE 1815-2012 table 11-9) -> identity field
DNP3_ATTRIBUTE_FIELDS: dict[int, str] = {
    252: "vendor",  # device manufacturer's name
    250: "model",  # device manufacturer's product name and model
    242: "firmware",  # device manufacturer's software version
    243: "hardware_version",
    248: "serial",  # device serial number
    247: "name",  # user-assigned device name
    246: "device_id",  # user-assigned ID code/number
    245: "location",  # user-assigned location name
    244: "owner",  # user-assigned owner name
    249: "dnp3_subset",  # DNP3 subset and conformance
    240: "max_transmit_fragment",
    241: "max_receive_fragment",
}
# g0 data types (11.9.3): 1 VSTR visible string, 2 UINT, 3 INT, 4 FLT, 5 OSTR, 6 BSTR
DNP3_VSTR, DNP3_UINT, DNP3_INT, DNP3_FLT, DNP3_OSTR, DNP3_BSTR = 1, 2, 3, 4, 5, 6
MAX_SZL_BYTES = 4096  # a fragmented answer is joined up to this size (0x001C is 340 octets)

# S7 connection types of the COTP connect request's TSAP, as the session names them: the kind
# of peer a client says it is (STEP 7 and TIA Portal ask for PG, HMIs for OP).
CONNECTION_TYPES = {"PG": "PG (programming device)", "OP": "OP (operator panel)",
                    "S7_BASIC": "S7 basic"}

# The fields shown as columns; anything else goes to ``attributes``.
MAIN_FIELDS = ("vendor", "model", "firmware", "order_number", "serial", "name")


@dataclass(frozen=True, slots=True)
class Identity:
    """What a device said about itself; ``evidence`` names the answers (protocol, frame)."""

    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    order_number: str | None = None
    serial: str | None = None
    name: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    evidence: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()

    def summary(self) -> str:
        """``vendor / model / firmware`` for a table cell, the known parts only."""
        return " / ".join(p for p in (self.vendor, self.model, self.firmware) if p)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in MAIN_FIELDS if getattr(self, k)}
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        if self.evidence:
            out["evidence"] = list(self.evidence)
        if self.conflicts:
            out["conflicts"] = list(self.conflicts)
        return out


def _text(raw: bytes) -> str:
    """SZL text fields: ASCII, NUL padded (sometimes space padded)."""
    return raw.split(b"\x00", 1)[0].decode("latin-1").strip()


def dnp3_attribute_value(data_type: int, octets: bytes) -> str | None:
    """One g0 attribute's value as text (the DNP3 codec decodes it); None for a type this
    function does not know."""
    if data_type not in (DNP3_VSTR, DNP3_UINT, DNP3_INT, DNP3_FLT, DNP3_OSTR, DNP3_BSTR):
        return None
    value = attribute_value(data_type, octets)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) or None


def dnp3_device_attributes(attributes: Mapping[int, str]) -> dict[str, str]:
    """Identity fields from g0 attributes (variation -> value); others kept as ``g0vN``."""
    out: dict[str, str] = {}
    for variation, value in sorted(attributes.items()):
        if value:
            out[DNP3_ATTRIBUTE_FIELDS.get(variation, f"g0v{variation}")] = value
    return out


def dnp3_attributes_from_headers(headers: Iterable[Any]) -> dict[int, str]:
    """variation -> value of the g0 attributes in decoded DNP3 object headers (a response to a
    g0 read: each attribute under its own header, one ``(data_type, octets)`` object)."""
    out: dict[int, str] = {}
    for h in headers:
        if getattr(h, "group", None) != 0:
            continue
        for item in getattr(h, "objects", ()):
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes | bytearray):
                value = dnp3_attribute_value(int(item[0]), bytes(item[1]))
                if value is not None:
                    out[int(h.variation)] = value
    return out


def vendor_from_order_number(order_number: str) -> tuple[str, str] | None:
    """(vendor, family) for a known order-number prefix.

    >>> vendor_from_order_number("6ES7 315-2EH14-0AB0")
    ('Siemens', 'SIMATIC S7')
    """
    compact = order_number.replace(" ", "").upper()
    for prefix, vendor, family in ORDER_NUMBER_VENDORS:
        if compact.startswith(prefix):
            return vendor, family
    return None


def s7_firmware(ausbg: int, ausbe: int) -> str | None:
    """The firmware version of SZL 0x0011 index 7: 'V' and the major number in Ausbg, then
    minor and patch in Ausbe (0x5603, 0x0206 -> V3.2.6).

    >>> s7_firmware(0x5603, 0x0206)
    'V3.2.6'
    """
    if ausbg >> 8 != ord("V"):
        return None
    return f"V{ausbg & 0xFF}.{ausbe >> 8}.{ausbe & 0xFF}"


def modbus_device_id(objects: Mapping[str, str]) -> dict[str, str]:
    """Fields from the objects of a Read Device Identification answer.

    The model is ModelName, else ProductName, else ProductCode: the basic level (the only one
    every device must answer) has just vendor, product code and revision.
    """
    out: dict[str, str] = {}
    for name, value in objects.items():
        value = value.strip().strip("\x00")
        key = MODBUS_OBJECT_FIELDS.get(name)
        if key and value:
            out[key] = value
    model = out.get("model_name") or out.get("product_name") or out.get("product_code")
    if model:
        out["model"] = model
    out.pop("model_name", None)
    return out


def decode_szl_0011(records: bytes, record_length: int | None) -> dict[str, str]:
    """Order number, hardware version and firmware from SZL 0x0011 (or 0x0111) records."""
    size = record_length or SZL_0011_RECORD  # 0: a device that leaves the header empty
    if size < SZL_0011_RECORD:
        return {}
    out: dict[str, str] = {}
    for at in range(0, len(records) - SZL_0011_RECORD + 1, size):
        rec = records[at : at + SZL_0011_RECORD]
        index = int.from_bytes(rec[0:2], "big")
        mlfb = _text(rec[2:22])
        ausbg = int.from_bytes(rec[24:26], "big")
        ausbe = int.from_bytes(rec[26:28], "big")
        if index == SZL_0011_MODULE and mlfb:
            out["order_number"] = mlfb
            out["hardware"] = str(ausbg)  # "version of the module", as Wireshark shows it
        elif index == SZL_0011_HARDWARE and mlfb and "order_number" not in out:
            out["order_number"] = mlfb
        elif index == SZL_0011_FIRMWARE:
            fw = s7_firmware(ausbg, ausbe)
            if fw:
                out["firmware"] = fw
    return out


def decode_szl_001c(records: bytes, record_length: int | None) -> tuple[dict[str, str], str | None]:
    """Names, module type and serial number from SZL 0x001C records, and a note when the
    answer broke the format (zero record length, zero indexes) and was read by position."""
    size = record_length or SZL_001C_RECORD
    note = None if record_length else "SZL 0x001C header gives no record length: 34 assumed"
    if size < SZL_001C_RECORD:
        return {}, None
    out: dict[str, str] = {}
    for n, at in enumerate(range(0, len(records) - SZL_001C_RECORD + 1, size)):
        rec = records[at : at + SZL_001C_RECORD]
        index = int.from_bytes(rec[0:2], "big")
        if index == 0 and n < len(SZL_001C_ORDER):
            index = SZL_001C_ORDER[n]
            note = "SZL 0x001C records without indexes: read in the standard order"
        key = SZL_001C_FIELDS.get(index)
        text = _text(rec[2:])
        if key and text:
            out[key] = text
    return out, note


def s7_identity(szl: Mapping[str, str]) -> dict[str, str]:
    """Main fields from decoded SZL fields: model is the module type (e.g. CPU 315-2 PN/DP),
    name the station name, vendor from the order number, else from the copyright entry."""
    out = dict(szl)
    if "module_type" in out:
        out["model"] = out.pop("module_type")
    if "station_name" in out:
        out["name"] = out.pop("station_name")
    order = out.get("order_number")
    found = vendor_from_order_number(order) if order else None
    if found:
        out["vendor"], out["family"] = found
    elif "siemens" in out.get("copyright", "").lower():
        out["vendor"] = "Siemens"  # S7 CPUs answer "Original Siemens Equipment" here
    return out


class _Fields:
    """One address's identity while it is being collected."""

    __slots__ = ("conflicts", "sources", "values")

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, str]] = {}  # field -> (value, where it was first seen)
        self.sources: dict[str, list[int]] = {}  # kind of answer -> [answers, first frame]
        self.conflicts: list[str] = []

    def merge(self, fields: Mapping[str, str], kind: str, frame: int) -> None:
        if not fields:
            return
        seen = self.sources.get(kind)
        if seen is None:
            self.sources[kind] = [1, frame]
        else:
            seen[0] += 1
        where = f"{kind.split(' (')[0]} frame {frame}"
        for key, value in fields.items():
            old = self.values.get(key)
            if old is None:
                self.values[key] = (value, where)
            elif old[0] != value and len(self.conflicts) < 16:
                text = f"{key}: {old[0]!r} ({old[1]}) then {value!r} ({where})"
                if text not in self.conflicts:
                    self.conflicts.append(text)

    def freeze(self) -> Identity:
        main = {k: v for k, (v, _) in self.values.items() if k in MAIN_FIELDS}
        attributes = {k: v for k, (v, _) in sorted(self.values.items()) if k not in MAIN_FIELDS}
        evidence = tuple(
            f"{kind}: {n} answer{'s' if n > 1 else ''}, first in frame {first}"
            for kind, (n, first) in self.sources.items()
        )
        return Identity(**main, attributes=attributes, evidence=evidence,
                        conflicts=tuple(self.conflicts))


class IdentityCollector:
    """Collects identity answers from records (dicts with the schema's columns).

    Feed it the rows that can carry identity (:meth:`wants` says which), in capture order.
    Fragmented SZL answers are joined per conversation and SZL id until the last fragment.
    """

    def __init__(self) -> None:
        self._by_address: dict[str, _Fields] = {}
        # conversation and SZL id -> (first frame, record length, records so far)
        self._szl: dict[tuple[Any, ...], tuple[int, int | None, bytearray]] = {}
        self.notes: dict[str, list[str]] = {}  # address -> evidence that carries no identity

    @staticmethod
    def wants(row: Mapping[str, Any]) -> bool:
        """Rows that can carry identity: identification answers, S7 connection requests (their
        TSAP names the kind of peer) and DNP3 fragments with group 0 objects."""
        if row.get("op_class") == "identify" and row.get("direction") == "response":
            return True
        if row.get("function") == "cotp_cr":
            return True
        detail = row.get("detail")
        return row.get("protocol") == "dnp3" and isinstance(detail, str) and DNP3_G0 in detail

    def _fields(self, address: str) -> _Fields:
        f = self._by_address.get(address)
        if f is None:
            f = self._by_address[address] = _Fields()
        return f

    def _note(self, address: str, text: str) -> None:
        notes = self.notes.setdefault(address, [])
        if text not in notes and len(notes) < 8:
            notes.append(text)

    def add(self, row: Mapping[str, Any]) -> None:
        protocol = row.get("protocol")
        raw = row.get("detail")
        detail: dict[str, Any] = json.loads(raw) if isinstance(raw, str) else (raw or {})
        if protocol == "modbus":
            objects = detail.get("objects")
            if isinstance(objects, dict) and objects:
                fields = modbus_device_id(objects)
                self._fields(str(row["src"])).merge(fields, "Modbus FC43 device identification",
                                                    int(row["frame"]))
        elif protocol == "s7comm":
            if row.get("function") == "cotp_cr":
                kind = detail.get("connection_type")
                if kind:
                    kind = CONNECTION_TYPES.get(kind, kind)
                    self._note(str(row["src"]), f"asked {row['dst']} for a {kind} connection")
                return
            self._szl_fragment(row, detail)
        elif protocol == "dnp3":
            g0 = [o for o in detail.get("objects", ()) if isinstance(o, dict) and o.get("group") == 0]
            side = "src" if row.get("direction") == "response" else "dst"  # the outstation
            values = {int(o["variation"]): str(o["value"]) for o in g0
                      if isinstance(o.get("variation"), int) and o.get("value") not in (None, "")}
            if values and row.get("direction") == "response":
                self._fields(str(row[side])).merge(dnp3_device_attributes(values),
                                                   "DNP3 device attributes (group 0)", int(row["frame"]))
            elif g0:
                variations = sorted({f"g0v{o.get('variation')}" for o in g0})
                self._note(str(row[side]), "DNP3 device attributes " + ", ".join(variations)
                           + " seen; their values are not in the record")

    def _szl_fragment(self, row: Mapping[str, Any], detail: dict[str, Any]) -> None:
        szl_id = detail.get("szl_id")
        hexdata = detail.get("records")
        if not isinstance(szl_id, int) or not isinstance(hexdata, str):
            return
        key = (row["src"], row.get("sport"), row["dst"], row.get("dport"), szl_id,
               detail.get("szl_index"))
        data = bytes.fromhex(hexdata)
        if detail.get("continuation"):
            held = self._szl.get(key)
            if held is None:
                return  # the first fragment was not seen
            if len(held[2]) + len(data) <= MAX_SZL_BYTES:
                held[2].extend(data)
            frame, length, data_all = held
        else:
            length = detail.get("record_length")
            frame = int(row["frame"])
            data_all = bytearray(data)
            self._szl[key] = (frame, length, data_all)
        if detail.get("last_data_unit") is False:
            return  # more fragments follow
        self._szl.pop(key, None)
        self._szl_answer(str(row["src"]), szl_id, bytes(data_all), length, frame)

    def _szl_answer(self, address: str, szl_id: int, data: bytes, length: int | None,
                    frame: int) -> None:
        kind = szl_id & 0xFF  # 0x0011, 0x0111, 0x0F11 ... are extracts of the same list
        source = f"S7 SZL 0x{szl_id:04x}"
        if kind == 0x11:
            self._fields(address).merge(s7_identity(decode_szl_0011(data, length)), source, frame)
        elif kind == 0x1C:
            fields, note = decode_szl_001c(data, length)
            source += f" ({note})" if note else ""
            self._fields(address).merge(s7_identity(fields), source, frame)

    def identities(self) -> dict[str, Identity]:
        return {a: f.freeze() for a, f in self._by_address.items()}

