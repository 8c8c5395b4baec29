#!/usr/bin/env python3
"""Make ``src/interlock/data/sample.pcap``: real protocol peers talking on loopback, captured.

The same peers as ``tests/peers`` (pymodbus, c104/lib60870, python-snap7, dnp3py) run on
127.0.0.0/8 addresses at their standard ports while ``dumpcap -i lo`` records them, with a
capture filter naming exactly those addresses and ports. The story, about 15 s long:

* a SCADA/HMI (127.0.0.1) polls a Modbus PLC (127.0.0.11:502) every 0.5 s the whole time, and
  the operator changes a setpoint twice (holding register 3: 1009 -> 1150 -> 1200);
* a SCADA front end runs IEC-104 with an RTU (127.0.0.12:2404, common address 47): STARTDT,
  general interrogation, a single command, a set-point of 42.75, later one of 9999.0;
* a DNP3 master polls an outstation (127.0.0.14:20000, address 10): class 0 read, integrity
  polls, then a CROB direct operate (LATCH_ON, index 2) and a class 0 read;
* an engineering station talks S7comm to a CPU (127.0.0.13:102): setup communication, reads
  DB1, writes DB1, reads SZL 0x001C (identification), PLC STOP, then a hot start (PI service);
* an unknown host (127.0.0.66) scans the Modbus PLC: FC43/14 read device identification (basic,
  regular, extended, one object), FC8 return query data, reads, then writes holding register 3
  = 65000 (far outside the operator's band) and forces coil 7.

Needs root (or capture rights on lo), dumpcap, and the peers: ``pip install pymodbus c104
python-snap7 dnp3py``. Run from the repository root: ``python scripts/make_sample.py``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.peers.capture import Dumpcap  # noqa: E402

MODBUS = ("127.0.0.11", 502)
IEC104 = ("127.0.0.12", 2404)
S7 = ("127.0.0.13", 102)
DNP3 = ("127.0.0.14", 20000)
INTRUDER = "127.0.0.66"
OUT = ROOT / "src" / "interlock" / "data" / "sample.pcap"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    args = parser.parse_args()

    from tests.peers import dnp3_peer, iec104_peer, modbus_peer, s7_peer

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "sample.pcap"
        peers = [modbus_peer.ModbusPeer(*MODBUS), iec104_peer.Iec104Peer(*IEC104),
                 s7_peer.S7Peer(*S7), dnp3_peer.Dnp3Peer(*DNP3)]
        started = []
        try:
            for peer in peers:
                started.append(peer.start())
            with Dumpcap(raw, [MODBUS, IEC104, S7, DNP3], pcapng=False):
                errors: list[BaseException] = []

                def hmi() -> None:
                    try:
                        modbus_peer.run_poll(*MODBUS, cycles=28, pause=0.5,
                                             writes={6: [(3, 1150)], 14: [(3, 1200)]})
                    except BaseException as exc:  # reported after the capture
                        errors.append(exc)

                poller = threading.Thread(target=hmi, name="hmi")
                poller.start()
                time.sleep(1.0)
                iec104_peer.run_session(*IEC104, setpoint=42.75)
                time.sleep(1.0)
                dnp3_peer.run_session(*DNP3, extra_polls=2, pause=0.5)
                time.sleep(1.0)
                s7_peer.run_session(*S7, stop_start=False, pause=0.3)
                time.sleep(1.5)
                iec104_peer.run_session(*IEC104, command=False, setpoint=9999.0)
                time.sleep(1.0)
                modbus_peer.run_scan(*MODBUS, source=INTRUDER, setpoint=65000)
                time.sleep(0.5)
                s7_peer.run_session(*S7, stop_start=True, pause=0.5)
                poller.join(timeout=30)
                if errors:
                    raise errors[0]
        finally:
            for peer in reversed(started):
                peer.stop()
        args.output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw, args.output)
        args.output.chmod(0o644)
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
