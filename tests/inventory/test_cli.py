"""``interlock inventory`` as a user runs it: real processes, files, exit codes."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.inventory.conftest import SAMPLE

SVG = "{http://www.w3.org/2000/svg}"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "interlock.cli", "inventory", *args],
                          capture_output=True, text=True)


def test_table_json_and_svg_map(tmp_path: Path) -> None:
    out, svg = tmp_path / "inv.json", tmp_path / "map.svg"
    res = run("--sample", "-o", str(out), "--map", str(svg))
    assert res.returncode == 0, res.stderr
    assert "interlock inventory: 6 assets, 5 conversations" in res.stdout
    assert "127.0.0.66 engineering workstation because: identity and diagnostics" in res.stdout
    doc = json.loads(out.read_text())
    addresses = [a["address"] for a in doc["assets"]]
    assert addresses == ["127.0.0.1", "127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14",
                         "127.0.0.66"]
    root = ET.parse(svg).getroot()
    ids = [g.get("id", "") for g in root.iter(f"{SVG}g")]
    assert sorted(i for i in ids if i.startswith("asset-")) == sorted(f"asset-{a}" for a in addresses)
    assert "edge-127.0.0.66-127.0.0.11-modbus" in ids
    assert len([i for i in ids if i.startswith("edge-")]) == 5
    texts = "".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "ILK-PLC-5020" in texts and "modbus: read 84, write 2" in texts


def test_png_map(tmp_path: Path) -> None:
    png = tmp_path / "map.png"
    assert run("--sample", "--map", str(png)).returncode == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 1000 and height >= 700


def test_intended_differences_exit_1_and_go_to_json(tmp_path: Path) -> None:
    intended, out = tmp_path / "intended.yaml", tmp_path / "inv.json"
    intended.write_text("- address: 127.0.0.11\n  role: PLC\n- address: 127.0.0.1\n  role: hmi\n"
                        "- address: 10.1.1.1\n  role: RTU\n")
    res = run("--sample", "--intended", str(intended), "-o", str(out))
    assert res.returncode == 1, res.stderr
    assert "rogue    127.0.0.66" in res.stdout
    assert "missing  10.1.1.1 RTU: intended (line 5), not seen" in res.stdout
    assert "differs  127.0.0.1 role: intended 'HMI/SCADA master'" in res.stdout
    comparison = json.loads(out.read_text())["comparison"]
    assert [r["address"] for r in comparison["rogue"]] == ["127.0.0.12", "127.0.0.13", "127.0.0.14",
                                                           "127.0.0.66"]


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "intended.yaml"
    bad.write_text("- address: 127.0.0.1\n  colour: red\n")
    for args, words in (
        (("--sample", "--intended", str(bad)), f"{bad}:2: unknown field 'colour'"),
        (("--sample", "--map", str(tmp_path / "map.jpg")), "name it .svg or .png"),
        ((str(tmp_path / "none.pcap"),), "no such file"),
        ((), "no capture given"),
    ):
        res = run(*args)
        assert res.returncode == 2, args
        assert words in res.stderr and "Traceback" not in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1


def test_damaged_capture_still_gives_what_was_decoded(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    data = SAMPLE.read_bytes()
    cut.write_bytes(data[: len(data) // 2] + b"\xff" * 20)  # a record header that lies
    out = tmp_path / "inv.json"
    res = run(str(cut), "-o", str(out))
    assert res.returncode == 2
    assert res.stderr.startswith("interlock: error: ") and str(cut) in res.stderr
    assert json.loads(out.read_text())["assets"]  # the first half's assets are there
