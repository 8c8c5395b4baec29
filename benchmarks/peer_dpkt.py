"""The dpkt peer of the decode benchmark: one CSV line per Modbus/TCP or DNP3 message.

Reads the capture with ``dpkt.pcap.Reader``, parses Ethernet, IPv4 and TCP with dpkt's classes,
then takes from the TCP payload what Interlock's records hold first: for Modbus the transaction,
unit, function code and (requests) reference and count; for DNP3 the link addresses, the
application function code and the first object's group and variation. No TCP reassembly and no
link-CRC removal (the first 16-byte DNP3 block holds the application header), so a message split
across segments is read from its first segment only: this is the cheapest honest dpkt decoder.

Usage: ``python benchmarks/peer_dpkt.py CAPTURE OUT.csv``
"""

from __future__ import annotations

import socket
import struct
import sys

import dpkt

MBAP = struct.Struct(">HHHBB")
REQ = struct.Struct(">HH")
DNP3_HDR = struct.Struct("<BBBBHH")


def main(path: str, out_path: str) -> int:
    ntoa = socket.inet_ntoa
    ip_cls, tcp_cls = dpkt.ip.IP, dpkt.tcp.TCP
    counts = {"modbus": 0, "dnp3": 0}
    with open(path, "rb") as fh, open(out_path, "w", buffering=1 << 20) as out:
        write = out.write
        write("frame,ts,protocol,src,dst,sport,dport,unit,transaction,function,address,count,object\n")
        for frame, (ts, buf) in enumerate(dpkt.pcap.Reader(fh), 1):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, ip_cls):
                continue
            tcp = ip.data
            if not isinstance(tcp, tcp_cls):
                continue
            data = tcp.data
            if not data:
                continue
            sport, dport = tcp.sport, tcp.dport
            if sport == 502 or dport == 502:
                if len(data) < 8:
                    continue
                tid, proto, _length, unit, fc = MBAP.unpack_from(data)
                if proto != 0:
                    continue
                addr = count = ""
                if dport == 502 and fc in (1, 2, 3, 4, 15, 16) and len(data) >= 12:
                    addr, count = REQ.unpack_from(data, 8)
                elif dport == 502 and fc in (5, 6) and len(data) >= 10:
                    (addr,) = struct.unpack_from(">H", data, 8)
                write(
                    f"{frame},{ts},modbus,{ntoa(ip.src)},{ntoa(ip.dst)},{sport},{dport},"
                    f"{unit},{tid},{fc},{addr},{count},\n"
                )
                counts["modbus"] += 1
            elif sport == 20000 or dport == 20000:
                if len(data) < 13 or data[0] != 0x05 or data[1] != 0x64:
                    continue
                _s, _s2, _length, _ctrl, dst, src = DNP3_HDR.unpack_from(data)
                fc = data[12]
                at = 15 if fc >= 0x81 else 13  # responses carry two IIN bytes first
                obj = f"g{data[at]}v{data[at + 1]}" if len(data) >= at + 2 else ""
                write(
                    f"{frame},{ts},dnp3,{ntoa(ip.src)},{ntoa(ip.dst)},{sport},{dport},"
                    f"{src}>{dst},,{fc},,,{obj}\n"
                )
                counts["dnp3"] += 1
    print(f"modbus {counts['modbus']} dnp3 {counts['dnp3']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
