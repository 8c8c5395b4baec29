"""The bundled ATT&CK for ICS table: what the script writes from MITRE's bundle, and nothing else."""

from __future__ import annotations

import doctest
import importlib.util
import json
from importlib import resources
from types import ModuleType
from typing import Any

import pytest

from interlock.detect import attack, incidents

from .conftest import REPO, SHARED

BUNDLE = SHARED / "attack" / "ics-attack.json"


def script() -> ModuleType:
    path = REPO / "scripts" / "make_attack_table.py"
    spec = importlib.util.spec_from_file_location("make_attack_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shipped() -> dict[str, object]:
    text = (resources.files("interlock") / "data" / "attack_ics.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def bundle() -> dict[str, Any]:
    if not BUNDLE.exists():
        pytest.skip("shared ATT&CK bundle absent (../shared/data not laid out)")
    return json.loads(BUNDLE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_shipped_table_is_what_the_script_writes(bundle: dict[str, Any]) -> None:
    license_text = BUNDLE.with_name("LICENSE.txt").read_text(encoding="utf-8")
    assert script().build_table(bundle, license_text, BUNDLE.name) == shipped()


def test_only_current_techniques(bundle: dict[str, Any]) -> None:
    retired = {
        o["name"] for o in bundle["objects"]
        if o["type"] == "attack-pattern" and (o.get("revoked") or o.get("x_mitre_deprecated"))
    }
    table = attack.load()
    assert "Modify Control Logic" in retired  # one that MITRE deprecated
    assert not retired & {t.name for t in table.techniques.values()}
    assert len(table.techniques) == 83 and len(table.tactics) == 12  # ATT&CK for ICS v18.1


def test_table_keeps_mitre_terms_of_use() -> None:
    table = attack.load()
    assert "© 2025 The MITRE Corporation. This work is reproduced and distributed with the permission of " \
           "The MITRE Corporation." in table.license
    assert "MITRE ATT&CK for ICS v18.1" in table.source and "MITRE Corporation" in table.copyright


def test_lookups() -> None:
    assert attack.technique("t0843").name == "Program Download"
    assert attack.technique("T0856").tactics == ("evasion", "impair-process-control")
    with pytest.raises(KeyError):
        attack.technique("T0999")


@pytest.mark.parametrize("module", [attack, incidents], ids=lambda m: m.__name__)
def test_docstring_examples_run(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
