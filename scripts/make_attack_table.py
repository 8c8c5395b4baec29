"""Write ``src/interlock/data/attack_ics.json``: the ATT&CK for ICS techniques Interlock names.

Reads MITRE's STIX 2.1 bundle (``ics-attack.json``, ATT&CK for ICS) and keeps, for every current
technique (neither revoked nor deprecated), its ID, name and tactics, plus the tactics themselves.
The bundle is 4 MB of relationships, analytics and prose that the detectors never read; the table
is a few kilobytes, so Interlock runs (and its rules are checked) without the shared data folder.

MITRE's terms of use ask every copy to reproduce MITRE's copyright designation and license: the
table carries both, read from the LICENSE.txt that sits beside the bundle.

    python scripts/make_attack_table.py [BUNDLE] [-o OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = ROOT.parent / "shared" / "data" / "attack" / "ics-attack.json"
DEFAULT_OUT = ROOT / "src" / "interlock" / "data" / "attack_ics.json"
KILL_CHAIN = "mitre-ics-attack"


def _external_id(obj: dict[str, Any]) -> str | None:
    for ref in obj.get("external_references", ()):
        if ref.get("source_name") == "mitre-attack":
            return str(ref["external_id"])
    return None


def _current(obj: dict[str, Any]) -> bool:
    return not obj.get("revoked", False) and not obj.get("x_mitre_deprecated", False)


def build_table(bundle: dict[str, Any], license_text: str, bundle_name: str) -> dict[str, Any]:
    """The table as a JSON-ready dict, in ID order so regenerating it gives the same bytes."""
    objects = bundle["objects"]
    collection = next(o for o in objects if o["type"] == "x-mitre-collection")
    marking = next((o for o in objects if o["type"] == "marking-definition"), None)
    tactics: dict[str, dict[str, str]] = {}
    for o in objects:
        if o["type"] == "x-mitre-tactic" and _current(o):
            tactic_id = _external_id(o)
            if tactic_id is not None:
                tactics[o["x_mitre_shortname"]] = {"id": tactic_id, "name": o["name"]}
    techniques: dict[str, dict[str, Any]] = {}
    for o in objects:
        if o["type"] != "attack-pattern" or not _current(o):
            continue
        tid = _external_id(o)
        if tid is None:
            continue
        phases = [
            p["phase_name"] for p in o.get("kill_chain_phases", ()) if p["kill_chain_name"] == KILL_CHAIN
        ]
        unknown = [p for p in phases if p not in tactics]
        if unknown:
            raise ValueError(f"{tid} names tactic(s) {unknown} that the bundle does not define")
        techniques[tid] = {"name": o["name"], "tactics": phases}
    return {
        "source": (
            f"MITRE ATT&CK for ICS v{collection['x_mitre_version']} ({bundle_name}, STIX 2.1 bundle, "
            f"collection modified {collection['modified']}); https://attack.mitre.org/matrices/ics/"
        ),
        "copyright": marking["definition"]["statement"] if marking else "",
        "license": license_text.strip(),
        "generated_by": "scripts/make_attack_table.py",
        "version": collection["x_mitre_version"],
        "tactics": dict(sorted(tactics.items(), key=lambda kv: kv[1]["id"])),
        "techniques": dict(sorted(techniques.items())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    license_path = args.bundle.with_name("LICENSE.txt")
    try:
        bundle = json.loads(args.bundle.read_text(encoding="utf-8"))
        license_text = license_path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"make_attack_table: {exc.filename}: cannot be read ({exc.strerror})", file=sys.stderr)
        return 2
    table = build_table(bundle, license_text, args.bundle.name)
    args.output.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.output}: {len(table['techniques'])} techniques, {len(table['tactics'])} tactics "
          f"(ATT&CK for ICS v{table['version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
