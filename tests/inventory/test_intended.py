"""The intended inventory: file checks with line numbers, and the comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.inventory import Inventory, Role
from interlock.inventory.intended import IntendedError, compare, load

GOOD = """\
# the plant as designed
- address: 127.0.0.1
  role: HMI            # the SCADA master... that also stops PLCs
- address: 127.0.0.11
  role: plc
  vendor: interlock peer works
  model: ILK-PLC-5020
  firmware: 3.1.3
- address: 127.0.0.12
  role: RTU
- address: 127.0.0.13
  role: PLC
  vendor: Siemens
- address: 127.0.0.14
  role: outstation
- address: 10.0.0.99
  role: historian
  name: historian in the DMZ
"""


def test_rogue_missing_and_different_assets(tmp_path: Path, sample: Inventory) -> None:
    path = tmp_path / "intended.yaml"
    path.write_text(GOOD)
    intended = load(path)
    assert intended[1].role is Role.PLC and intended[1].line == 4
    c = compare(sample, intended)
    assert [a.address for a in c.rogue] == ["127.0.0.66"]
    assert [(m.address, m.role, m.line) for m in c.missing] == [("10.0.0.99", Role.HISTORIAN, 16)]
    assert [(m.address, m.field, m.intended, m.seen) for m in c.mismatches] == [
        ("127.0.0.1", "role", "HMI/SCADA master", "engineering workstation (also behaves as "
                                                  "HMI/SCADA master)"),
        ("127.0.0.11", "firmware", "3.1.3", "3.1.4"),  # vendor differs in case only: same
    ]
    assert c.matched == 5 and not c.clean
    doc = c.to_json()
    assert doc["rogue"][0]["because"][0].startswith("identity and diagnostics to 127.0.0.11")


def test_mapping_form_and_a_clean_comparison(tmp_path: Path, sample: Inventory) -> None:
    lines = ["assets:"] + [f"  - address: {a.address}\n    role: {a.role}" for a in sample.assets]
    path = tmp_path / "intended.yml"
    path.write_text("\n".join(lines) + "\n")
    assert compare(sample, load(path)).clean


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- address: 10.0.0.1\n  adress: 10.0.0.2\n", ":2: unknown field 'adress': use address, role"),
        ("- address: 10.0.0.1\n- address: 10.0.0.300\n", ":2: address '10.0.0.300' is not an IP"),
        ("- address: 10.0.0.1\n- role: PLC\n", ":2: asset without an address"),
        ("- address: 10.0.0.1\n  role: DCS\n", ":1: role 'DCS' is not one of: PLC, RTU"),
        ("- address: 10.0.0.1\n- address: 10.0.0.1\n", ":2: address 10.0.0.1 is listed twice "
                                                         "(first on line 1)"),
        ("- address: 10.0.0.1\n  role: [PLC]\n", ":2: role needs a plain value"),
        ("- address: 10.0.0.1\n  role: PLC\n - address: x\n", ":3: not valid YAML"),
        ("hosts:\n  - address: 10.0.0.1\n", ":1: a mapping needs an 'assets' list"),
        ("just text\n", ":1: expected a list of assets"),
        ("- 10.0.0.1\n", ":1: each asset is a mapping"),
        ("", ": empty: list the intended assets"),
    ],
)
def test_bad_files_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "intended.yaml"
    path.write_text(text)
    with pytest.raises(IntendedError) as info:
        load(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(IntendedError, match="no such file"):
        load(tmp_path / "nope.yaml")
