"""Write a large, realistic Modbus/TCP + DNP3 capture for the decode benchmark.

Fast and deterministic: frames are packed with ``struct`` from per-connection state (no scapy
objects), IPv4 and TCP checksums are correct, DNP3 link frames carry correct CRCs, and the same
``--packets``/``--seed`` always give the same bytes. The file is cached under ``--out-dir``
(default ``$TMPDIR/interlock-bench``), so reruns of the benchmark do not pay for it again.

Traffic (about 70 % Modbus, 30 % DNP3 packets):

* Modbus/TCP, port 502: three SCADA masters (an HMI, a historian and an engineering
  workstation) poll four PLCs on seven connections. Each master cycles through its scan list
  (FC3/FC4 reads of 10-60 registers, FC1/FC2 reads of 8-64 coils/inputs) every 0.25-1 s; the
  engineering workstation writes (FC6, FC16) now and then; about 0.5 % of requests get an
  exception response; about 1 % of responses are split across two TCP segments; delayed ACKs
  appear as ACK-only segments; connections are closed (FIN) and reopened on a new port from
  time to time, each with its three-way handshake.
* DNP3 over TCP port 20000: two masters poll five outstations. Event polls (READ of g60v2-4,
  class 1/2/3) answered by null responses or g2v1/g32v1 events; integrity polls (class 0123)
  answered with g1v2 binary inputs and g30v1 analog inputs; now and then a SELECT/OPERATE pair on
  a g12v1 CROB, echoed by the outstation; rare link-status keep-alives.

Usage: ``python benchmarks/gen_capture.py [--packets 1000000] [--seed 7] [--out-dir DIR]``;
prints the path of the capture.
"""

from __future__ import annotations

import argparse
import heapq
import os
import random
import struct
import sys
import tempfile
import time
from array import array
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path

GEN_VERSION = 1  # bump when the traffic changes, so cached captures are rebuilt
EPOCH_US = 1_717_200_000 * 1_000_000  # 2024-06-01, in microseconds
MS = 1000  # microseconds per millisecond

SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10
Packet = tuple[int, bytes]  # (timestamp in microseconds, Ethernet frame)

# --------------------------------------------------------------------------------- checksums


def _csum(data: bytes) -> bytes:
    """Internet checksum (RFC 1071), returned as the two bytes to put in the header."""
    if len(data) & 1:
        data += b"\0"
    s = sum(array("H", data))  # native-order words: packing the result natively undoes it
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return struct.pack("=H", ~s & 0xFFFF)


def _dnp3_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA6BC if crc & 1 else crc >> 1  # 0x3D65 reflected
        table.append(crc)
    return table


_DNP3_TABLE = _dnp3_table()


def dnp3_crc(data: bytes) -> bytes:
    """DNP3 link-layer CRC-16 (poly 0x3D65, reflected, complemented), little-endian."""
    crc = 0
    t = _DNP3_TABLE
    for b in data:
        crc = (crc >> 8) ^ t[(crc ^ b) & 0xFF]
    return struct.pack("<H", ~crc & 0xFFFF)


def dnp3_link_frame(ctrl: int, dst: int, src: int, user_data: bytes = b"") -> bytes:
    """A DNP3 link frame: 8-byte header + CRC, then 16-byte blocks each followed by its CRC."""
    header = struct.pack("<BBBBHH", 0x05, 0x64, 5 + len(user_data), ctrl, dst, src)
    parts = [header, dnp3_crc(header)]
    for i in range(0, len(user_data), 16):
        block = user_data[i : i + 16]
        parts.append(block)
        parts.append(dnp3_crc(block))
    return b"".join(parts)


# ------------------------------------------------------------------------------ TCP/IP frames


class End:
    """A host: its addresses and IP stack settings (the IP ID counter is per host)."""

    __slots__ = ("eth", "ip", "ipid", "ttl", "window")

    def __init__(self, mac: bytes, ip: bytes, ttl: int, window: int, ipid: int) -> None:
        self.eth = mac
        self.ip = ip
        self.ttl = ttl
        self.window = window
        self.ipid = ipid


class Conn:
    """A TCP connection between a client and a server; ``seg`` builds one Ethernet frame."""

    def __init__(self, rng: random.Random, client: End, server: End, cport: int, sport: int) -> None:
        self.c, self.s = client, server
        self.cport, self.sport = cport, sport
        self.cseq = rng.getrandbits(32)
        self.sseq = rng.getrandbits(32)
        self.eth_cs = server.eth + client.eth + b"\x08\x00"  # client -> server
        self.eth_sc = client.eth + server.eth + b"\x08\x00"

    def seg(self, from_client: bool, flags: int, payload: bytes = b"") -> bytes:
        if from_client:
            a, b, eth = self.c, self.s, self.eth_cs
            aport, bport, seq, ack = self.cport, self.sport, self.cseq, self.sseq
        else:
            a, b, eth = self.s, self.c, self.eth_sc
            aport, bport, seq, ack = self.sport, self.cport, self.sseq, self.cseq
        if not flags & ACK:
            ack = 0
        if flags & SYN:  # MSS option on SYN and SYN-ACK
            tcp = struct.pack(
                "!HHIIBBHHHBBH", aport, bport, seq, ack, 0x60, flags, a.window, 0, 0, 2, 4, 1460
            )
        else:
            tcp = struct.pack("!HHIIBBHHH", aport, bport, seq, ack, 0x50, flags, a.window, 0, 0)
        seg = tcp + payload
        pseudo = a.ip + b.ip + struct.pack("!HH", 6, len(seg))
        seg = seg[:16] + _csum(pseudo + seg) + seg[18:]
        ip = struct.pack("!BBHHHBB", 0x45, 0, 20 + len(seg), a.ipid, 0x4000, a.ttl, 6)
        a.ipid = (a.ipid + 1) & 0xFFFF
        addrs = a.ip + b.ip
        ip += _csum(ip + b"\0\0" + addrs) + addrs
        seq = (seq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        if from_client:
            self.cseq = seq
        else:
            self.sseq = seq
        return eth + ip + seg

    def handshake(self, t: int, rtt: int) -> Iterator[Packet]:
        yield t, self.seg(True, SYN)
        yield t + rtt, self.seg(False, SYN | ACK)
        yield t + rtt + 60, self.seg(True, ACK)

    def close(self, t: int, rtt: int) -> Iterator[Packet]:
        yield t, self.seg(True, FIN | ACK)
        yield t + rtt, self.seg(False, FIN | ACK)
        yield t + rtt + 50, self.seg(True, ACK)


def _host(n: int, ip: str, ttl: int, window: int) -> End:
    mac = bytes((0x00, 0x1B, 0x1B, 0x10, n >> 8, n & 0xFF))  # a made-up OUI, one per host
    return End(mac, bytes(int(x) for x in ip.split(".")), ttl, window, (n * 7919) & 0xFFFF)


DELAYED_ACK = 40 * MS


class _Pool:
    """Random bytes for register and point values: slices instead of per-value random calls."""

    def __init__(self, rng: random.Random) -> None:
        self.data = rng.randbytes(1 << 16)
        self.rng = rng

    def take(self, n: int) -> bytes:
        at = self.rng.randrange(0, len(self.data) - n)
        return self.data[at : at + n]


# ------------------------------------------------------------------------------------ Modbus


def modbus_flow(
    rng: random.Random, pool: _Pool, master: End, plc: End, unit: int, start: int, writes: float
) -> Iterator[Packet]:
    """One master polling one PLC forever: scan cycles, writes, reconnects."""
    scan = []
    for _ in range(rng.randint(4, 8)):
        fc = rng.choice((3, 3, 3, 4, 4, 1, 2))
        if fc in (3, 4):
            scan.append((fc, rng.randrange(0, 4000, 10), rng.randint(10, 60)))
        else:
            scan.append((fc, rng.randrange(0, 2000, 8), rng.randint(8, 64)))
    period = rng.randint(250, 1000) * MS
    rtt = rng.randint(200, 900)
    t = start
    tid = rng.getrandbits(16)
    port = rng.randint(49152, 60000)
    while True:
        port = port + 1 if port < 65000 else 49152
        conn = Conn(rng, master, plc, port, 502)
        yield from conn.handshake(t, rtt)
        t += rtt + 2 * MS
        for _ in range(rng.randint(300, 3000)):  # scan cycles on this connection
            cycle_start = t
            items = list(scan)
            if rng.random() < writes:
                addr = rng.randrange(0, 4000, 10)
                if rng.random() < 0.6:
                    items.append((6, addr, 1))
                else:
                    items.append((16, addr, rng.randint(1, 10)))
            for n, (fc, addr, count) in enumerate(items):
                tid = (tid + 1) & 0xFFFF
                if fc == 6:
                    req = struct.pack(">BHH", 6, addr, rng.randrange(0, 10000))
                elif fc == 16:
                    req = struct.pack(">BHHB", 16, addr, count, 2 * count) + pool.take(2 * count)
                else:
                    req = struct.pack(">BHH", fc, addr, count)
                if rng.random() < 0.005:
                    resp = bytes((fc | 0x80, rng.choice((2, 2, 2, 3, 4, 6, 1))))
                elif fc in (3, 4):
                    resp = bytes((fc, 2 * count)) + pool.take(2 * count)
                elif fc in (1, 2):
                    nbytes = (count + 7) // 8
                    resp = bytes((fc, nbytes)) + pool.take(nbytes)
                elif fc == 6:
                    resp = req
                else:
                    resp = struct.pack(">BHH", 16, addr, count)
                yield t, conn.seg(True, PSH | ACK, struct.pack(">HHHB", tid, 0, len(req) + 1, unit) + req)
                slow = rng.random() < 0.02
                delay = rng.randint(50, 150) * MS if slow else rng.randint(1, 12) * MS
                if slow:  # the PLC's stack acks the request before the answer
                    yield t + DELAYED_ACK, conn.seg(False, ACK)
                t += delay
                adu = struct.pack(">HHHB", tid, 0, len(resp) + 1, unit) + resp
                if rng.random() < 0.01 and len(adu) > 9:
                    cut = rng.randint(7, len(adu) - 1)
                    yield t, conn.seg(False, PSH | ACK, adu[:cut])
                    t += rng.randint(200, 2000)
                    yield t, conn.seg(False, PSH | ACK, adu[cut:])
                else:
                    yield t, conn.seg(False, PSH | ACK, adu)
                gap = rng.randint(2, 30) * MS if n + 1 < len(items) else 0
                if gap == 0:
                    gap = max(cycle_start + period - t, 5 * MS) + rng.randint(0, 20) * MS
                if gap > DELAYED_ACK:  # nothing to piggyback on: the master's delayed ACK
                    yield t + DELAYED_ACK, conn.seg(True, ACK)
                t += gap
        yield from conn.close(t, rtt)
        t += rng.randint(1000, 5000) * MS


# -------------------------------------------------------------------------------------- DNP3


def _app_request(seq: int, fc: int, objects: bytes) -> bytes:
    return bytes((0xC0 | seq, fc)) + objects


def _app_response(seq: int, iin: bytes, objects: bytes) -> bytes:
    return bytes((0xC0 | seq, 0x81)) + iin + objects


CLASS123 = bytes.fromhex("3c02063c03063c0406")
CLASS0123 = CLASS123 + bytes.fromhex("3c0106")


def dnp3_flow(
    rng: random.Random,
    pool: _Pool,
    master: End,
    outstation: End,
    maddr: int,
    oaddr: int,
    start: int,
    interval_ms: int,
) -> Iterator[Packet]:
    """One master polling one outstation forever over TCP 20000."""
    n_bin = rng.randint(8, 32)
    n_ana = rng.randint(5, 30)
    rtt = rng.randint(200, 900)
    t = start
    port = rng.randint(40000, 49000)
    aseq = tseq_m = tseq_o = 0

    def to_outstation(app: bytes) -> bytes:
        nonlocal tseq_m
        tseq_m = (tseq_m + 1) & 0x3F
        return dnp3_link_frame(0xC4, oaddr, maddr, bytes((0xC0 | tseq_m,)) + app)

    def to_master(app: bytes) -> bytes:
        nonlocal tseq_o
        tseq_o = (tseq_o + 1) & 0x3F
        return dnp3_link_frame(0x44, maddr, oaddr, bytes((0xC0 | tseq_o,)) + app)

    while True:
        port += 1
        conn = Conn(rng, master, outstation, port, 20000)
        yield from conn.handshake(t, rtt)
        t += rtt + 2 * MS
        for poll in range(rng.randint(2000, 20000)):
            exchanges: list[tuple[bytes, bytes]] = []
            roll = rng.random()
            if roll < 0.005:  # link-status keep-alive, link layer only
                exchanges.append((dnp3_link_frame(0xC9, oaddr, maddr), dnp3_link_frame(0x0B, maddr, oaddr)))
            elif roll < 0.015:  # SELECT then OPERATE of one CROB
                index = rng.randrange(0, 16)
                code = rng.choice((0x41, 0x81, 0x03, 0x04))
                crob = struct.pack("<BBBHHBBIIB", 12, 1, 0x28, 1, index, code, 1, 1000, 0, 0)
                for fc in (3, 4):
                    aseq = (aseq + 1) & 0x0F
                    exchanges.append(
                        (
                            to_outstation(_app_request(aseq, fc, crob)),
                            to_master(_app_response(aseq, b"\x00\x00", crob)),
                        )
                    )
            else:
                aseq = (aseq + 1) & 0x0F
                if poll % 30 == 0:  # integrity poll: static binary and analog inputs
                    req = _app_request(aseq, 1, CLASS0123)
                    flags = bytes(rng.choice((0x01, 0x81)) for _ in range(n_bin))
                    analog = b"".join(b"\x01" + pool.take(4) for _ in range(n_ana))
                    objects = (
                        struct.pack("<BBBBB", 1, 2, 0x00, 0, n_bin - 1)
                        + flags
                        + struct.pack("<BBBBB", 30, 1, 0x00, 0, n_ana - 1)
                        + analog
                    )
                    resp = _app_response(aseq, b"\x00\x00", objects)
                else:  # event poll: mostly nothing new
                    req = _app_request(aseq, 1, CLASS123)
                    r = rng.random()
                    if r < 0.6:
                        resp = _app_response(aseq, b"\x00\x00", b"")
                    elif r < 0.8:
                        k = rng.randint(1, 4)
                        ev = b"".join(
                            struct.pack("<HB", rng.randrange(n_bin), rng.choice((1, 0x81))) for _ in range(k)
                        )
                        resp = _app_response(aseq, b"\x02\x00", struct.pack("<BBBH", 2, 1, 0x28, k) + ev)
                    else:
                        k = rng.randint(1, 6)
                        ev = b"".join(
                            struct.pack("<HB", rng.randrange(n_ana), 1) + pool.take(4) for _ in range(k)
                        )
                        resp = _app_response(aseq, b"\x04\x00", struct.pack("<BBBH", 32, 1, 0x28, k) + ev)
                exchanges.append((to_outstation(req), to_master(resp)))
            for req_frame, resp_frame in exchanges:
                yield t, conn.seg(True, PSH | ACK, req_frame)
                t += rng.randint(3, 25) * MS
                yield t, conn.seg(False, PSH | ACK, resp_frame)
                gap = rng.randint(2, 10) * MS
                if len(exchanges) == 1 or req_frame is exchanges[-1][0]:
                    gap = rng.randint(interval_ms // 2, interval_ms * 3 // 2) * MS
                if gap > DELAYED_ACK:
                    yield t + DELAYED_ACK, conn.seg(True, ACK)
                t += gap
        yield from conn.close(t, rtt)
        t += rng.randint(2000, 8000) * MS


# ------------------------------------------------------------------------------------ output


def traffic(seed: int) -> Iterator[Packet]:
    """Every flow's packets merged in time order (endless)."""
    rng = random.Random(seed)
    pool = _Pool(rng)
    hmi = _host(1, "10.10.1.10", 128, 64240)
    historian = _host(2, "10.10.1.11", 64, 64240)
    eng = _host(3, "10.10.1.12", 128, 64240)
    plcs = [_host(20 + i, f"10.10.2.{21 + i}", 64, 8192) for i in range(4)]
    flows: list[Iterator[Packet]] = []
    for master, plc_ids, writes in ((hmi, (0, 1, 2, 3), 0.02), (historian, (0, 1), 0.0), (eng, (2,), 0.3)):
        for i in plc_ids:
            start = rng.randint(0, 500) * MS
            flows.append(
                modbus_flow(
                    random.Random(rng.getrandbits(64)),
                    pool,
                    master,
                    plcs[i],
                    rng.choice((1, 1, 255, i + 1)),
                    start,
                    writes,
                )
            )
    scada = [_host(40, "10.20.1.5", 128, 64240), _host(41, "10.20.1.6", 128, 64240)]
    rtus = [_host(50 + i, f"10.20.3.{11 + i}", 64, 4096) for i in range(5)]
    for m, (master, rtu_ids) in enumerate(((scada[0], (0, 1, 2)), (scada[1], (3, 4)))):
        for i in rtu_ids:
            start = rng.randint(0, 500) * MS
            flows.append(
                dnp3_flow(
                    random.Random(rng.getrandbits(64)), pool, master, rtus[i], 1 + m, 10 + i, start, 170
                )
            )
    for ts, frame in heapq.merge(*flows, key=itemgetter(0)):
        yield EPOCH_US + ts, frame


def write_capture(path: Path, packets: int, seed: int) -> None:
    """Write ``packets`` frames to ``path`` (atomically, via a temporary file)."""
    rec = struct.Struct("<IIII")
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb", buffering=1 << 20) as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        out: list[bytes] = []
        for n, (ts, frame) in enumerate(traffic(seed), 1):
            out.append(rec.pack(ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)))
            out.append(frame)
            if n >= packets:
                break
            if len(out) >= 20000:
                fh.write(b"".join(out))
                out.clear()
        fh.write(b"".join(out))
    tmp.replace(path)


def default_dir() -> Path:
    return Path(os.environ.get("INTERLOCK_BENCH_DIR", Path(tempfile.gettempdir()) / "interlock-bench"))


def ensure_capture(packets: int, seed: int = 7, out_dir: Path | None = None) -> Path:
    """The cached capture for these parameters, generated first if missing."""
    out_dir = out_dir or default_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"ics-{packets}-s{seed}-v{GEN_VERSION}.pcap"
    if not path.exists():
        t0 = time.perf_counter()
        print(f"generating {path} ({packets:,} packets) ...", file=sys.stderr, flush=True)
        write_capture(path, packets, seed)
        print(
            f"generated in {time.perf_counter() - t0:.1f} s, {path.stat().st_size / 1e6:.0f} MB",
            file=sys.stderr,
            flush=True,
        )
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--packets", type=int, default=1_000_000, help="frames to write")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help="cache folder (default: $INTERLOCK_BENCH_DIR or $TMPDIR/interlock-bench)",
    )
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    args = ap.parse_args(argv)
    if args.force:
        out_dir = args.out_dir or default_dir()
        (out_dir / f"ics-{args.packets}-s{args.seed}-v{GEN_VERSION}.pcap").unlink(missing_ok=True)
    print(ensure_capture(args.packets, args.seed, args.out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
