"""Port scans and host sweeps (T0846 Remote System Discovery) through the decoder's connection
records and the rules ``tcp/port_scan.yml`` and ``tcp/host_sweep.yml``; benign polling stays
silent. Captures are written with scapy (never sent)."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import wrpcap

from interlock.capture.decode import decode_path
from interlock.detect.alerts import Alert
from interlock.detect.network.baseline import Baseline
from interlock.detect.network.rules import Rule, run_rules
from interlock.inventory.assets import build as build_inventory
from interlock.protocols.modbus.codec import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    build_adu,
    build_pdu,
)

from .conftest import shared

SCANNER, PLC, MASTER = "10.9.9.9", "10.1.0.6", "10.1.0.20"
SCANNER_MAC, PLC_MAC = "02:00:00:00:09:09", "02:00:00:00:01:06"
T0 = 1_700_000_000.0


def seg(src: str, dst: str, sport: int, dport: int, flags: str, t: float, seq: int = 1000,
        ack: int = 0, payload: bytes = b"") -> Packet:
    p = (Ether(src=SCANNER_MAC if src == SCANNER else PLC_MAC,
               dst=PLC_MAC if src == SCANNER else SCANNER_MAC)
         / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack) / payload)
    p.time = t
    return p


def syn_scan(tmp_path: Path) -> Path:
    """nmap -sS of 100 ports of one PLC: each SYN answered by RST/ACK (502 is open: SYN/ACK)."""
    packets = []
    for i, port in enumerate(range(1, 101)):
        t = T0 + i * 0.02
        packets.append(seg(SCANNER, PLC, 41000, port, "S", t))
        if port == 502:
            packets.append(seg(PLC, SCANNER, port, 41000, "SA", t + 0.001, 5000, 1001))
            packets.append(seg(SCANNER, PLC, 41000, port, "R", t + 0.002, 1001))
        else:
            packets.append(seg(PLC, SCANNER, port, 41000, "RA", t + 0.001, 0, 1001))
    wrpcap(str(tmp_path / "syn_scan.pcap"), packets)
    return tmp_path / "syn_scan.pcap"


def sweep(tmp_path: Path) -> Path:
    """nmap -p 502 over 30 hosts: one SYN each within 1.5 s; a third answer, the rest RST."""
    packets = []
    for i in range(30):
        host, t = f"10.1.0.{100 + i}", T0 + i * 0.05
        packets.append(seg(SCANNER, host, 41001, 502, "S", t))
        flags = "SA" if i % 3 == 0 else "RA"
        packets.append(seg(host, SCANNER, 502, 41001, flags, t + 0.001, 5000, 1001))
    wrpcap(str(tmp_path / "sweep.pcap"), packets)
    return tmp_path / "sweep.pcap"


def polling(tmp_path: Path, devices: int = 8) -> Path:
    """A Modbus master opens one connection per device at start-up and polls each every second
    for two minutes; one device's connection drops and is reopened."""
    packets = []
    seq: dict[str, list[int]] = {}

    def connect(dev: str, sport: int, t: float) -> None:
        packets.append(seg(MASTER, dev, sport, 502, "S", t))
        packets.append(seg(dev, MASTER, 502, sport, "SA", t + 0.001, 5000, 1001))
        packets.append(seg(MASTER, dev, sport, 502, "A", t + 0.002, 1001, 5001))
        seq[dev] = [1001, 5001, sport]

    hosts = [f"10.1.0.{30 + i}" for i in range(devices)]
    for i, dev in enumerate(hosts):
        connect(dev, 40000 + i, T0 + i * 0.1)
    tid = 0
    for second in range(1, 121):
        for i, dev in enumerate(hosts):
            if dev == hosts[0] and second == 60:  # the device resets the connection; reconnect
                packets.append(seg(dev, MASTER, 502, seq[dev][2], "RA", T0 + 60, seq[dev][1], seq[dev][0]))
                connect(dev, 40100, T0 + 60.5)
            tid += 1
            c, s, sport = seq[dev]
            t = T0 + second + i * 0.01
            req = build_adu(tid, 1, ReadHoldingRegistersRequest(0, 4))
            resp = build_adu(tid, 1, build_pdu(ReadHoldingRegistersResponse((1, 2, 3, second))))
            packets.append(seg(MASTER, dev, sport, 502, "PA", t, c, s, req))
            packets.append(seg(dev, MASTER, 502, sport, "PA", t + 0.005, s, c + len(req), resp))
            seq[dev] = [c + len(req), s + len(resp), sport]
    wrpcap(str(tmp_path / "polling.pcap"), packets)
    return tmp_path / "polling.pcap"


def alerts_of(rules: tuple[Rule, ...], capture: Path) -> list[Alert]:
    batches, _ = decode_path(capture)
    return run_rules(rules, batches)


def t0846(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.technique == "T0846"]


def test_syn_scan_is_found(rules: tuple[Rule, ...], tmp_path: Path) -> None:
    alerts = alerts_of(rules, syn_scan(tmp_path))
    found = t0846(alerts)
    assert [a.title for a in found] == ["TCP port scan of one host"]
    a = found[0]
    assert a.src == SCANNER and a.dst == PLC and a.count == 100
    assert "100 distinct dport values" in a.explanation and a.explanation.startswith(SCANNER)
    assert alerts == found  # the refusals (RST responses) feed no ICS rule


def test_host_sweep_is_found(rules: tuple[Rule, ...], tmp_path: Path) -> None:
    alerts = alerts_of(rules, sweep(tmp_path))
    found = t0846(alerts)
    assert [a.title for a in found] == ["TCP host sweep of one port"]
    assert found[0].src == SCANNER and found[0].count == 30
    assert "30 distinct dst values" in found[0].explanation
    assert alerts == found


def test_polling_master_is_no_scan(rules: tuple[Rule, ...], tmp_path: Path) -> None:
    capture = polling(tmp_path)
    rows = [r for b in decode_path(capture)[0] for r in b.to_pylist()]
    assert sum(r["protocol"] == "tcp" for r in rows) == 8 + 1 + 1  # 9 SYNs and 1 RST, of 2000 polls
    assert alerts_of(rules, capture) == []


def test_shared_polling_capture_gives_no_scan(rules: tuple[Rule, ...]) -> None:
    assert t0846(alerts_of(rules, shared("modbus/ModbusTCP.pcap"))) == []


def test_scanner_is_no_master_and_baseline_learns_no_tcp(tmp_path: Path) -> None:
    """Connection records feed neither the inventory's roles nor the baseline's links."""
    scan, poll = syn_scan(tmp_path), polling(tmp_path, devices=2)
    inv = build_inventory([*decode_path(scan)[0], *decode_path(poll)[0]])
    addresses = {a.address for a in inv.assets}
    assert SCANNER not in addresses  # it only sent SYNs
    assert {MASTER, "10.1.0.30", "10.1.0.31"} <= addresses
    assert all(e.protocol == "modbus" for e in inv.edges)
    baseline = Baseline().fit([*decode_path(scan)[0], *decode_path(poll)[0]])
    assert {link[0] for link in baseline.links_} == {MASTER}


def test_scan_evidence_slices_every_cited_frame(rules: tuple[Rule, ...], tmp_path: Path) -> None:
    """A scan alert cites frames of 100 connections, not of the one flow it names: the case
    file's slice keeps them all."""
    from interlock.detect.incidents import group_incidents
    from interlock.evidence.bundle import slice_capture

    capture = syn_scan(tmp_path)
    incident = group_incidents(t0846(alerts_of(rules, capture)))[0]
    cut = slice_capture(capture, incident, margin_s=1.0)
    assert set(incident.alerts[0].frames) <= set(cut.frames)
    assert len(incident.alerts[0].frames) == 100
