"""Connection records: one ``tcp`` record per SYN without ACK and per RST from the host that
received it; none for handshakes' other segments, data, FINs or the initiator's own RSTs.
Captures are written with scapy (never sent)."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import wrpcap

from interlock.capture.decode import decode_path, decode_records
from interlock.protocols.modbus.codec import ReadHoldingRegistersRequest, build_adu

MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
BACK = {"src": MACS["dst"], "dst": MACS["src"]}
SCANNER, PLC = "10.9.9.9", "10.1.0.6"


def seg(src: str, dst: str, sport: int, dport: int, flags: str, seq: int = 1000, ack: int = 0,
        payload: bytes = b"", back: bool = False) -> Packet:
    return (Ether(**(BACK if back else MACS)) / IP(src=src, dst=dst)
            / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack) / payload)


def write(path: Path, packets: list[Packet], t0: float = 1_700_000_000.0) -> Path:
    for i, p in enumerate(packets):
        p.time = t0 + i * 0.01
    wrpcap(str(path), packets)
    return path


def test_syn_and_rst_records(tmp_path: Path) -> None:
    pcap = write(tmp_path / "scan.pcap", [
        seg(SCANNER, PLC, 41000, 22, "S"),                              # 1 attempt
        seg(PLC, SCANNER, 22, 41000, "RA", 0, 1001, back=True),         # 2 refused
        seg(SCANNER, PLC, 41000, 80, "S"),                              # 3 attempt
        seg(PLC, SCANNER, 80, 41000, "SA", 5000, 1001, back=True),      # 4 open: no record
        seg(SCANNER, PLC, 41000, 80, "R", 1001),                        # 5 scanner's own RST: none
        seg(SCANNER, PLC, 41000, 23, "S"),                              # 6 attempt
        seg(PLC, SCANNER, 23, 41000, "R", 0, back=True),                # 7 bare RST: refused too
    ])
    rows = decode_records(pcap)
    got = [(r["frame"], r["src"], r["dst"], r["sport"], r["dport"], r["transport"], r["protocol"],
            r["op_class"], r["function"], r["direction"]) for r in rows]
    assert got == [
        (1, SCANNER, PLC, 41000, 22, "tcp", "tcp", "session", "syn", "request"),
        (2, PLC, SCANNER, 22, 41000, "tcp", "tcp", "session", "rst", "response"),
        (3, SCANNER, PLC, 41000, 80, "tcp", "tcp", "session", "syn", "request"),
        (6, SCANNER, PLC, 41000, 23, "tcp", "tcp", "session", "syn", "request"),
        (7, PLC, SCANNER, 23, 41000, "tcp", "tcp", "session", "rst", "response"),
    ]
    for r in rows:  # nothing else is filled in
        assert r["function_code"] is None and r["unit"] is None and r["values"] is None
        assert r["malformed"] is None and r["detail"] is None


def test_one_record_per_connection_not_per_packet(tmp_path: Path) -> None:
    """A Modbus connection: one syn record, then only Modbus records; a RST from a third
    party's port or on a flow whose SYN was not seen makes none."""
    req = build_adu(1, 1, ReadHoldingRegistersRequest(0, 2))
    resp = bytes.fromhex("000100000007010304000a000b")
    pcap = write(tmp_path / "poll.pcap", [
        seg("10.1.0.20", PLC, 40001, 502, "S"),
        seg(PLC, "10.1.0.20", 502, 40001, "SA", 5000, 1001, back=True),
        seg("10.1.0.20", PLC, 40001, 502, "A", 1001, 5001),
        seg("10.1.0.20", PLC, 40001, 502, "PA", 1001, 5001, req),
        seg(PLC, "10.1.0.20", 502, 40001, "PA", 5001, 1001 + len(req), resp, back=True),
        seg("10.1.0.20", PLC, 40001, 502, "FA", 1001 + len(req), 5001 + len(resp)),
        seg(PLC, "10.1.0.20", 502, 40001, "RA", 5001 + len(resp), 1002 + len(req), back=True),
        seg("10.1.0.30", PLC, 40009, 502, "R", 7),  # mid-stream RST of an unseen connection
    ])
    batches, decoder = decode_path(pcap)
    rows = [r for b in batches for r in b.to_pylist()]
    assert [(r["protocol"], r["function"]) for r in rows] == [
        ("tcp", "syn"), ("modbus", "read_holding_registers"), ("modbus", "read_holding_registers"),
        ("tcp", "rst")]
    assert decoder.stats.operations == {"tcp": 2, "modbus": 2}
    assert decoder.stats.flows == {"modbus": 1}  # connection records open no ICS flow


def test_syn_ack_and_retransmitted_syn(tmp_path: Path) -> None:
    """SYN/ACK is an answer, not an attempt; a retransmitted SYN is one more attempt."""
    pcap = write(tmp_path / "retry.pcap", [
        seg(SCANNER, PLC, 41000, 20000, "S"),
        seg(SCANNER, PLC, 41000, 20000, "S"),
        seg(PLC, SCANNER, 20000, 41000, "SA", 5000, 1001, back=True),
    ])
    assert [r["function"] for r in decode_records(pcap)] == ["syn", "syn"]
