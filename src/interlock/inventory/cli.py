"""``interlock inventory``: the assets of captures as a table, JSON and a map, checked against
the intended inventory.

Exit codes: 0 done; 1 the comparison with ``--intended`` found rogue, missing or different
assets (so scripts and CI can act on it); 2 bad input (one line on stderr naming the file).
A capture that turns out damaged still gives the inventory of what was decoded before the
damage (table, JSON and map are written), then the error and exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import click
import pyarrow as pa
from rich.console import Console
from rich.table import Table
from rich.text import Text

from interlock.capture.decode import Decoder, open_capture
from interlock.capture.pcap import CaptureError, read_frames
from interlock.inventory.assets import Asset, Inventory, InventoryBuilder
from interlock.inventory.intended import Comparison, IntendedError, compare, load
from interlock.inventory.macs import MacTable

MAP_FORMATS = (".svg", ".png")  # plot.FORMATS, named here so the CLI starts without matplotlib


def _fail(message: str) -> None:
    click.echo(f"interlock: error: {message}", err=True)
    sys.exit(2)


def _batches(path: Path, macs: MacTable) -> Iterator[pa.RecordBatch]:
    """One pass over the file: frames go through the MAC tap into the decoder."""
    decoder = Decoder()
    with open_capture(path) as fh:
        yield from decoder.frames(macs.tap(read_frames(fh, str(path))))


def inventory_of(captures: tuple[Path, ...]) -> tuple[Inventory, str | None]:
    """The inventory of the captures, and the error that stopped reading, if one did."""
    macs = MacTable()
    builder = InventoryBuilder()
    error = None
    for path in captures:
        try:
            for batch in _batches(path, macs):
                builder.update(batch)
        except CaptureError as exc:
            error = str(exc)
            break
    table = macs.by_address()
    notes = []
    for mac, n in sorted(macs.shared(builder.addresses()).items()):
        notes.append(f"MAC {mac} carries {n} addresses: a router or proxy between the capture "
                     "point and those hosts, so it is not their own MAC")
    if macs.full:
        notes.append("too many (MAC, address) pairs: later ones were not kept")
    inv = builder.finish(captures=[str(p) for p in captures], macs=table, notes=notes)
    return inv, error


def _table(inv: Inventory, console: Console) -> None:
    title = f"interlock inventory: {len(inv.assets)} assets, {len(inv.edges)} conversations"
    table = Table(title=title, show_lines=False)
    for col in ("address", "MAC", "role", "vendor / model / firmware", "protocols", "peers",
                "operations"):
        table.add_column(col, justify="right" if col == "peers" else "left",
                         overflow="fold")
    for a in inv.assets:
        table.add_row(a.address, "\n".join(a.macs) or "-", str(a.role),
                      a.identity.summary() or "-", "\n".join(s.label() for s in a.services),
                      str(len(a.peers)), _operations(a))
    console.print(table)
    if not inv.assets:
        console.print("no ICS operations in the captures (Modbus/TCP, DNP3, S7comm, IEC-104)")
    else:
        console.print(Text("Why these roles", style="bold"))
    for a in inv.assets:
        console.print(Text.assemble((f"  {a.address}", "bold"), f" {a.role} because: ",
                                    "; ".join(a.because)))
        for role in a.also:
            console.print(f"      also {role}: " + "; ".join(a.evidence[role]))
        for note in (*a.identity.conflicts, *a.notes):
            console.print(f"      note: {note}")
    for note in inv.notes:
        console.print(f"note: {note}")


def _operations(a: Asset) -> str:
    parts = []
    if a.sent:
        parts.append("sent " + ", ".join(f"{k} {v}" for k, v in list(a.sent.items())[:4]))
    if a.received:
        parts.append("received " + ", ".join(f"{k} {v}" for k, v in list(a.received.items())[:4]))
    if a.malformed:
        parts.append(f"malformed {a.malformed}")
    return "\n".join(parts) or "-"


def _comparison(c: Comparison, console: Console) -> None:
    console.print(Text(f"Against the intended inventory: {c.matched} as intended or compared, "
                       f"{len(c.rogue)} rogue, {len(c.missing)} missing, "
                       f"{len(c.mismatches)} different", style="bold"))
    for a in c.rogue:
        macs = f" ({', '.join(a.macs)})" if a.macs else ""
        console.print(f"  rogue    {a.address}{macs}: {a.role} because: {'; '.join(a.because)}")
    for m in c.missing:
        what = f" {m.role}" if m.role else ""
        name = f" ({m.name})" if m.name else ""
        console.print(f"  missing  {m.address}{what}{name}: intended (line {m.line}), not seen")
    for d in c.mismatches:
        console.print(f"  differs  {d.address} {d.field}: intended {d.intended!r}, seen {d.seen!r}")


def _sample() -> Path:
    return Path(str(resources.files("interlock") / "data" / "sample.pcap"))


@click.command()
@click.argument("captures", nargs=-1, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Write the inventory as JSON to this file.")
@click.option("--map", "map_path", type=click.Path(path_type=Path),
              help="Draw the asset map to this file (.svg or .png).")
@click.option("--intended", type=click.Path(path_type=Path),
              help="YAML list of the intended assets: report rogue, missing and different ones.")
@click.option("--sample", is_flag=True, help="Use the sample capture bundled with Interlock.")
def inventory(captures: tuple[Path, ...], output: Path | None, map_path: Path | None,
              intended: Path | None, sample: bool) -> None:
    """Assets seen in pcap/pcapng CAPTURES: roles, identities, protocols and who talks to whom."""
    if sample:
        captures = (*captures, _sample())
    if not captures:
        _fail("no capture given: name one or more pcap/pcapng files, or use --sample")
    if map_path is not None and map_path.suffix.lower() not in MAP_FORMATS:
        _fail(f"{map_path}: the map is written as SVG or PNG: name it .svg or .png")
    expected = None
    if intended is not None:
        try:
            expected = load(intended)  # checked before the captures are read: fail early
        except IntendedError as exc:
            _fail(str(exc))
    inv, error = inventory_of(captures)
    console = Console(width=None if sys.stdout.isatty() else 160)
    _table(inv, console)
    comparison = compare(inv, expected) if expected is not None else None
    if comparison is not None:
        _comparison(comparison, console)
    if output is not None:
        doc = inv.to_json()
        if comparison is not None:
            doc["comparison"] = comparison.to_json()
        try:
            output.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            _fail(f"{output}: cannot write ({exc.strerror})")
    if map_path is not None:
        try:
            from interlock.inventory.plot import draw_map  # matplotlib: only when drawing

            draw_map(inv, map_path)
        except OSError as exc:
            _fail(f"{map_path}: cannot write ({exc.strerror})")
    if error is not None:
        _fail(error)
    if comparison is not None and not comparison.clean:
        sys.exit(1)
