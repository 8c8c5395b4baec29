"""The masters the range's HMI polls its non-Modbus field devices with.

* :class:`Dnp3Master` and :class:`Iec104Master` speak through Interlock's own sans-I/O codecs
  (:mod:`interlock.protocols.dnp3`, :mod:`interlock.protocols.iec104`) over asyncio streams.
  Chosen over dnp3py's master and c104's client because the codecs' build functions cover every
  request needed (READ of classes, CROB select/operate/direct operate, WRITE of IIN; STARTDT,
  C_IC_NA_1, C_SC_NA_1, C_SE_NC_1, S-format acknowledgements), so every poll of the range also
  exercises Interlock's encoders and decoders against independent stacks; and because a plain
  asyncio socket can bind its source address to the HMI host (``bind_host``, 127.0.0.2 by
  default) so captures show the SCADA master there, which neither dnp3py's ``MasterTcpRunner``
  nor c104's ``Client`` allows. The link/transport/APCI state machines they need (frame
  reassembly, sequence numbers, confirms) are the few lines below, written by hand for that
  reason.
* :class:`S7Master` uses python-snap7's ``Client`` (blocking, run in a worker thread): Interlock's
  S7comm codec is a decoder for the sensor, and an S7 poll is two requests. snap7's client
  creates its own socket without a bind, so **its source address is not the HMI host** (the
  kernel picks 127.0.0.1 on loopback).

Each master polls one device: ``poll`` returns ``tag -> value`` for every monitored point (and the
DNP3 binary output status), ``command`` sends one operator command and says whether the device
accepted it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Protocol

from interlock.protocols.base import Malformed
from interlock.protocols.dnp3.codec import (
    ApplicationRequest,
    ApplicationResponse,
    ObjectHeader,
    build,
    parse_fragment,
    parse_frame,
    parse_segment,
)
from interlock.protocols.dnp3.fields import (
    HEADER_SIZE,
    IIN,
    START,
    CommandStatus,
    FunctionCode,
    OpType,
)
from interlock.protocols.dnp3.link import frame_size
from interlock.protocols.dnp3.stream import Reassembler, Segmenter
from interlock.protocols.iec104 import codec as c104
from interlock.protocols.iec104.fields import Cause, TypeID, UFunction
from interlock.range.devices.base import DevicePoint, DeviceSpec
from interlock.range.devices.s7_sis import CPU_STATE, SZL_CPU_STATE, cpu_state_of, decode, encode

HMI_HOST = "127.0.0.2"


class Master(Protocol):
    async def connect(self) -> None: ...

    async def poll(self) -> dict[str, float]: ...

    async def command(self, tag: str, value: float) -> bool: ...

    async def close(self) -> None: ...


class _Stream:
    """An asyncio TCP connection bound to ``bind_host`` when one is given."""

    def __init__(self, host: str, port: int, bind_host: str | None, timeout_s: float) -> None:
        self.host, self.port, self.bind_host, self.timeout_s = host, port, bind_host, timeout_s
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        local = (self.bind_host, 0) if self.bind_host else None
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, local_addr=local), self.timeout_s)

    async def read(self, n: int) -> bytes:
        if self.reader is None:
            raise ConnectionError(f"{self.host}:{self.port}: not connected")
        return await self.reader.readexactly(n)

    async def write(self, data: bytes) -> None:
        if self.writer is None:
            raise ConnectionError(f"{self.host}:{self.port}: not connected")
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        writer, self.reader, self.writer = self.writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


# --------------------------------------------------------------------------- DNP3

_BI_GROUPS, _BO_GROUPS, _AI_GROUPS = (1, 2), (10, 11), (30, 32)
_FAMILY = {**dict.fromkeys(_BI_GROUPS, "binary_input"), **dict.fromkeys(_BO_GROUPS, "binary_output"),
           **dict.fromkeys(_AI_GROUPS, "analog_input")}
_ERROR_IIN = IIN.NO_FUNC_CODE_SUPPORT | IIN.OBJECT_UNKNOWN | IIN.PARAMETER_ERROR


class Dnp3Master:
    """A DNP3 master (link address ``spec.master_address``) polling outstation ``spec.unit``.

    ``poll`` is an integrity poll (READ class 1, 2, 3 then class 0, one request): events drain
    the outstation's buffers and the class 0 part gives every static value. ``command`` sends a
    CROB LATCH_ON (value >= 0.5) or LATCH_OFF to a binary output, select-before-operate unless
    ``select_before_operate`` is False (then direct operate).
    """

    def __init__(self, spec: DeviceSpec, *, bind_host: str | None = HMI_HOST, timeout_s: float = 3.0,
                 select_before_operate: bool = True) -> None:
        self.spec = spec
        self.stream = _Stream(spec.host, spec.port, bind_host, timeout_s)
        self.timeout_s = timeout_s
        self.select_before_operate = select_before_operate
        self._app_seq = 0
        self._segmenter = Segmenter(master=spec.master_address, outstation=spec.unit)
        self._by_key = {(p.type, p.index): p for p in spec.points}
        self.last_iin = 0
        self.unsolicited: list[ApplicationResponse] = []  # unsolicited responses seen (confirmed)

    async def connect(self) -> None:
        await self.stream.open()
        await self._request(FunctionCode.READ, (ObjectHeader(60, 1, 0x06),))
        if self.last_iin & IIN.DEVICE_RESTART:  # acknowledge the restart (write IIN1.7 = 0)
            await self._request(FunctionCode.WRITE, (ObjectHeader(80, 1, 0x00, start=7, stop=7,
                                                                  objects=((0,),)),))

    async def close(self) -> None:
        await self.stream.close()

    async def poll(self) -> dict[str, float]:
        headers = tuple(ObjectHeader(60, v, 0x06) for v in (2, 3, 4, 1))
        values: dict[str, float] = {}
        for response in await self._request(FunctionCode.READ, headers):
            self._collect(response, values)
        return values

    async def command(self, tag: str, value: float) -> bool:
        point = next((p for p in self.spec.points if p.tag == tag and p.type == "binary_output"), None)
        if point is None or point.index is None:
            raise KeyError(f"{self.spec.name}: no binary output {tag!r}")
        code = OpType.LATCH_ON if value >= 0.5 else OpType.LATCH_OFF
        crob = ObjectHeader(12, 1, 0x17, count=1, indexes=(point.index,), objects=((int(code), 1, 0, 0, 0),))
        steps = ((FunctionCode.SELECT, FunctionCode.OPERATE) if self.select_before_operate
                 else (FunctionCode.DIRECT_OPERATE,))
        for function in steps:
            responses = await self._request(function, (crob,))
            if not responses or not self._crob_ok(responses[-1]):
                return False
        return True

    async def request(self, function: FunctionCode, headers: tuple[ObjectHeader, ...] = ()
                      ) -> list[ApplicationResponse]:
        """Any request (enable unsolicited, restarts...): the response fragments."""
        return await self._request(function, headers)

    # ----------------------------------------------------------------- internals

    @staticmethod
    def _crob_ok(response: ApplicationResponse) -> bool:
        if response.iin & _ERROR_IIN or not response.headers:
            return False
        return all(o[4] == CommandStatus.SUCCESS for h in response.headers for o in h.objects)

    def _collect(self, response: ApplicationResponse, values: dict[str, float]) -> None:
        for h in response.headers:
            family = _FAMILY.get(h.group)
            if family is None:
                continue
            if h.indexes is not None:
                indexes: tuple[int, ...] | range = h.indexes
            elif h.start is not None and h.stop is not None:
                indexes = range(h.start, h.stop + 1)
            else:
                continue
            for i, v in zip(indexes, h.values, strict=False):
                point = self._by_key.get((family, i))
                if point is not None and isinstance(v, int | float):
                    values[point.tag] = float(v)  # later headers (static after events) win

    async def _send(self, fragment: ApplicationRequest) -> None:
        for frame in self._segmenter.frames(build(fragment)):
            await self.stream.write(frame)

    async def _read_fragment(self) -> ApplicationResponse:
        """The next complete response fragment from the outstation (link-only frames skipped)."""
        reassembler = Reassembler()
        while True:
            head = await self.stream.read(HEADER_SIZE)
            if head[:2] != START:
                raise ConnectionError(f"{self.spec.name}: lost DNP3 framing ({head.hex()})")
            rest = await self.stream.read(frame_size(head[2]) - HEADER_SIZE)
            frame = parse_frame(head + rest)
            if isinstance(frame, Malformed) or frame.dir or not frame.user_data:
                continue  # a link ACK/status, or a frame that is not for a master
            if frame.source != self.spec.unit or frame.destination != self.spec.master_address:
                continue
            seg = parse_segment(frame.user_data)
            if isinstance(seg, Malformed):
                continue
            data = reassembler.add(seg)
            if data is None:
                continue
            fragment = parse_fragment(data)
            if isinstance(fragment, ApplicationResponse):
                return fragment

    async def _confirm(self, seq: int, uns: bool) -> None:
        await self._send(ApplicationRequest(FunctionCode.CONFIRM, seq=seq, uns=uns))

    async def _request(self, function: FunctionCode, headers: tuple[ObjectHeader, ...]
                       ) -> list[ApplicationResponse]:
        seq = self._app_seq
        self._app_seq = (seq + 1) & 0x0F
        await self._send(ApplicationRequest(function, seq=seq, headers=headers))
        out: list[ApplicationResponse] = []
        async with asyncio.timeout(self.timeout_s):
            while True:
                response = await self._read_fragment()
                if response.uns:  # unsolicited, if a drill enabled it: confirm and keep
                    if response.con:
                        await self._confirm(response.seq, True)
                    self.unsolicited.append(response)
                    continue
                if response.seq != seq:
                    continue  # a late answer to an earlier request
                out.append(response)
                self.last_iin = response.iin
                if response.con:
                    await self._confirm(seq, False)
                if response.fin:
                    return out


# --------------------------------------------------------------------------- IEC 104

_MONITOR_TYPES = {TypeID.M_ME_NC_1, TypeID.M_SP_NA_1, TypeID.M_ME_TF_1, TypeID.M_SP_TB_1}
_ACK_EVERY = 8  # w: acknowledge at the latest after 8 received I-format APDUs (104 §5.5)


class Iec104Master:
    """An IEC 104 controlling station for common address ``spec.unit``.

    ``poll`` sends a station interrogation (C_IC_NA_1, QOI 20) and reads until its activation
    termination, so every point has been reported when it returns; values received
    spontaneously in between are applied in arrival order. ``command`` sends C_SC_NA_1 (select
    then execute unless ``select_before_execute`` is False) or C_SE_NC_1 (direct) and returns
    whether the station confirmed it positively.
    """

    def __init__(self, spec: DeviceSpec, *, bind_host: str | None = HMI_HOST, timeout_s: float = 3.0,
                 select_before_execute: bool = True) -> None:
        self.spec = spec
        self.stream = _Stream(spec.host, spec.port, bind_host, timeout_s)
        self.timeout_s = timeout_s
        self.select_before_execute = select_before_execute
        self._send_seq = 0
        self._recv_seq = 0
        self._unacked = 0
        self._by_ioa = {p.ioa: p for p in spec.points}
        self.values: dict[str, float] = {}  # the latest value of each monitored point
        self.spontaneous = 0  # monitored ASDUs received with COT 3 (spontaneous)

    async def connect(self) -> None:
        await self.stream.open()
        await self.stream.write(c104.build(c104.UFormat(UFunction.STARTDT_ACT)))
        async with asyncio.timeout(self.timeout_s):
            while True:
                apdu = await self._read()
                if isinstance(apdu, c104.UFormat) and apdu.function == UFunction.STARTDT_CON:
                    return

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ack()
        await self.stream.close()

    async def poll(self) -> dict[str, float]:
        await self._send_asdu(TypeID.C_IC_NA_1, c104.InterrogationCommand(0, 20))
        end = await self._until(TypeID.C_IC_NA_1, 0, Cause.ACTIVATION_TERM)
        await self._ack()
        if end.negative or end.cot != Cause.ACTIVATION_TERM:
            raise ConnectionError(f"{self.spec.name}: interrogation refused (COT {end.cot})")
        return {p.tag: self.values[p.tag] for p in self.spec.points
                if p.type.startswith("M_") and p.tag in self.values}

    async def command(self, tag: str, value: float) -> bool:
        point = next((p for p in self.spec.points if p.tag == tag and p.type.startswith("C_")), None)
        if point is None or point.ioa is None:
            raise KeyError(f"{self.spec.name}: no command point {tag!r}")
        ioa = point.ioa
        if point.type == "C_SC_NA_1":
            on = value >= 0.5
            steps: list[tuple[TypeID, c104.InformationObject]] = []
            if self.select_before_execute:
                steps.append((TypeID.C_SC_NA_1, c104.SingleCommand(ioa, on, select=True)))
            steps.append((TypeID.C_SC_NA_1, c104.SingleCommand(ioa, on, select=False)))
        elif point.type == "C_SE_NC_1":
            steps = [(TypeID.C_SE_NC_1, c104.SetpointShortFloat(ioa, float(value)))]
        else:
            raise KeyError(f"{self.spec.name}: {tag} is a {point.type}, not a command this master sends")
        for type_id, obj in steps:
            await self._send_asdu(type_id, obj)
            con = await self._until(type_id, ioa, Cause.ACTIVATION_CON)
            if con.negative:
                await self._ack()
                return False
        await self._ack()
        return True

    # ----------------------------------------------------------------- internals

    async def _read(self) -> c104.Apdu:
        head = await self.stream.read(2)
        if head[0] != 0x68:
            raise ConnectionError(f"{self.spec.name}: lost IEC 104 framing ({head.hex()})")
        apdu = c104.parse(head + await self.stream.read(head[1]))
        if isinstance(apdu, Malformed):
            raise ConnectionError(f"{self.spec.name}: malformed APDU: {apdu}")
        if isinstance(apdu, c104.UFormat) and apdu.function == UFunction.TESTFR_ACT:
            await self.stream.write(c104.build(c104.UFormat(UFunction.TESTFR_CON)))
        if isinstance(apdu, c104.IFormat):
            self._recv_seq = (self._recv_seq + 1) & 0x7FFF
            self._unacked += 1
            self._apply(apdu.asdu)
            if self._unacked >= _ACK_EVERY:
                await self._ack()
        return apdu

    def _apply(self, asdu: c104.Asdu) -> None:
        if asdu.type_id not in _MONITOR_TYPES or asdu.common_address != self.spec.unit:
            return
        if asdu.cot == Cause.SPONTANEOUS:
            self.spontaneous += 1
        for obj in asdu.objects:
            point = self._by_ioa.get(obj.ioa)
            value = getattr(obj, "value", None)
            if point is not None and isinstance(value, bool | int | float):
                self.values[point.tag] = float(value)

    async def _ack(self) -> None:
        if self._unacked:
            self._unacked = 0
            await self.stream.write(c104.build(c104.SFormat(self._recv_seq)))

    async def _send_asdu(self, type_id: TypeID, obj: c104.InformationObject) -> None:
        asdu = c104.Asdu(type_id, Cause.ACTIVATION, self.spec.unit, (obj,))
        apdu = c104.IFormat(self._send_seq, self._recv_seq, asdu)
        self._send_seq = (self._send_seq + 1) & 0x7FFF
        self._unacked = 0  # an I-format APDU acknowledges what we received
        await self.stream.write(c104.build(apdu))

    async def _until(self, type_id: TypeID, ioa: int, cause: Cause) -> c104.Asdu:
        """Read until the station answers ``type_id``/``ioa`` with ``cause`` (or refuses it)."""
        async with asyncio.timeout(self.timeout_s):
            while True:
                apdu = await self._read()
                if not isinstance(apdu, c104.IFormat):
                    continue
                a = apdu.asdu
                if a.type_id != type_id or a.common_address != self.spec.unit:
                    continue
                if a.objects and a.objects[0].ioa != ioa:
                    continue
                if a.cot == cause or (a.negative and a.cot == Cause.ACTIVATION_CON):
                    return a
                if a.cot in (Cause.UNKNOWN_TYPE_ID, Cause.UNKNOWN_CAUSE,
                             Cause.UNKNOWN_COMMON_ADDRESS, Cause.UNKNOWN_IOA):
                    return a


# --------------------------------------------------------------------------- S7


class S7Master:
    """A snap7 client reading (and writing) the DBs of an S7 device (rack 0, slot ``spec.unit``).

    ``poll`` reads each DB once and decodes every point, and the CPU's operating state (SZL
    0x0424, as an HMI shows a PLC's RUN/STOP) for a ``CPU_STATE`` point; ``command`` writes one
    rw point (a REAL setpoint, a BOOL bypass). The blocking snap7 calls run in the default executor.
    The connection's source address is not ``HMI_HOST``: snap7 does not bind its socket.
    """

    def __init__(self, spec: DeviceSpec, *, timeout_s: float = 3.0) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self._client: object | None = None
        self._dbs: dict[int, tuple[DevicePoint, ...]] = {}
        self._states = tuple(p for p in spec.points if p.type == CPU_STATE)
        for p in spec.points:
            if p.type == CPU_STATE:
                continue
            self._dbs.setdefault(p.db or 1, ())
            self._dbs[p.db or 1] += (p,)

    async def connect(self) -> None:
        from snap7.client import Client

        client = Client()
        await asyncio.wait_for(asyncio.to_thread(client.connect, self.spec.host, 0, self.spec.unit,
                                                 self.spec.port), self.timeout_s)
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.disconnect)  # type: ignore[attr-defined]

    def _read_all(self) -> dict[str, float]:
        from snap7.client import Client

        client = self._client
        if not isinstance(client, Client):
            raise ConnectionError(f"{self.spec.name}: not connected")
        out: dict[str, float] = {}
        for number, points in self._dbs.items():
            size = max(int(p.offset or 0) + (4 if p.type == "REAL" else 1) for p in points)
            data = bytes(client.db_read(number, 0, size))
            for p in points:
                out[p.tag] = decode(data, p)
        if self._states:
            try:
                state = cpu_state_of(bytes(client.read_szl(SZL_CPU_STATE, 0).Data))
            except Exception:  # a CPU that does not serve the list: its mode unknown, its DB kept
                state = float("nan")
            out.update({p.tag: state for p in self._states})
        return out

    async def poll(self) -> dict[str, float]:
        return await asyncio.wait_for(asyncio.to_thread(self._read_all), self.timeout_s)

    def _write(self, point: DevicePoint, value: float) -> None:
        from snap7.client import Client

        client = self._client
        if not isinstance(client, Client):
            raise ConnectionError(f"{self.spec.name}: not connected")
        off = int(point.offset or 0)
        size = 4 if point.type == "REAL" else 1
        buf = bytearray(client.db_read(point.db or 1, off, size))  # keep the other bits of a BOOL byte
        encode(buf, dataclasses.replace(point, offset=0), value)
        client.db_write(point.db or 1, off, buf)

    async def command(self, tag: str, value: float) -> bool:
        point = next((p for p in self.spec.points if p.tag == tag and p.access == "rw"), None)
        if point is None:
            raise KeyError(f"{self.spec.name}: no writable point {tag!r}")
        try:
            await asyncio.wait_for(asyncio.to_thread(self._write, point, value), self.timeout_s)
        except Exception:
            return False
        return True


def build_master(spec: DeviceSpec, bind_host: str | None = HMI_HOST) -> Master:
    """The master for one field device (the S7 one cannot bind ``bind_host``)."""
    if spec.protocol == "dnp3":
        return Dnp3Master(spec, bind_host=bind_host)
    if spec.protocol == "iec104":
        return Iec104Master(spec, bind_host=bind_host)
    if spec.protocol == "s7comm":
        return S7Master(spec)
    raise ValueError(f"{spec.name}: no master for protocol {spec.protocol!r}")
