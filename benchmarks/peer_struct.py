"""The floor of the decode benchmark: a bare ``struct`` loop over the pcap records.

Reads the file in 4 MiB chunks, walks the record headers, skips Ethernet/IPv4/TCP by their
header lengths and counts the Modbus function code of every segment on port 502 (and the
segments on port 20000). No objects, no strings, no output file: nothing a decoder can skip.
Only classic little-endian pcap over Ethernet (what gen_capture.py writes).

Usage: ``python benchmarks/peer_struct.py CAPTURE``
"""

from __future__ import annotations

import struct
import sys

CHUNK = 1 << 22


def main(path: str) -> int:
    rec = struct.Struct("<IIII").unpack_from
    ports = struct.Struct("!HH").unpack_from
    codes = [0] * 256
    dnp3 = frames = 0
    with open(path, "rb") as fh:
        buf = fh.read(CHUNK)
        if buf[:4] != b"\xd4\xc3\xb2\xa1":
            print("peer_struct: only little-endian microsecond pcap", file=sys.stderr)
            return 2
        pos = 24
        while True:
            if pos + 16 > len(buf) or pos + 16 + rec(buf, pos)[2] > len(buf):
                more = fh.read(CHUNK)
                if not more:
                    break
                buf = buf[pos:] + more
                pos = 0
                continue
            incl = rec(buf, pos)[2]
            p = pos + 16
            pos = p + incl
            frames += 1
            tcp = p + 14 + ((buf[p + 14] & 0x0F) << 2)
            sport, dport = ports(buf, tcp)
            payload = tcp + ((buf[tcp + 12] >> 4) << 2)
            if sport == 502 or dport == 502:
                if pos - payload >= 8:
                    codes[buf[payload + 7]] += 1
            elif (sport == 20000 or dport == 20000) and pos > payload:
                dnp3 += 1
    print(f"frames {frames} modbus {sum(codes)} dnp3 {dnp3}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
