"""The asset map: who talks to whom, drawn as SVG or PNG with matplotlib.

Laid out in the Purdue model's two lowest levels rather than by a force-directed layout, so the
picture reads the same way on every capture: supervisory hosts (engineering workstations,
HMIs, historians, other clients) on top, controllers (PLCs, RTUs) below, each row wrapped after
``per_row`` nodes. Controllers are ordered by the mean position of their clients, which keeps
edges from crossing much. Nodes are colored by role; an edge goes from client to server, its
width grows with the log of its operations, its color says the protocol and its label the
busiest operation classes. In SVG every node is a group ``id="asset-<address>"`` and every
edge ``id="edge-<client>-<server>-<protocol>"``, so tools and tests can find them.

Drawn with matplotlib's object API (``Figure``), not pyplot: no global state, no GUI backend.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation

from interlock.inventory.assets import Asset, Edge, Inventory, Role

ROLE_COLORS: dict[Role, str] = {
    Role.PLC: "#2b6cb0",
    Role.RTU: "#2f855a",
    Role.HMI: "#dd6b20",
    Role.ENGINEERING: "#c53030",
    Role.HISTORIAN: "#6b46c1",
    Role.CLIENT: "#718096",
}
PROTOCOL_COLORS: dict[str, str] = {
    "modbus": "#3182ce",
    "dnp3": "#38a169",
    "s7comm": "#e53e3e",
    "s7comm-plus": "#b83280",
    "iec104": "#d69e2e",
}
CONTROLLERS = (Role.PLC, Role.RTU)
FORMATS = (".svg", ".png")
MAX_EDGE_LABELS = 60  # beyond this many edges, labels would hide the picture


def _gid(prefix: str, *parts: str) -> str:
    """An SVG id: IPv6 colons become dashes (colons are not allowed in XML ids)."""
    return prefix + "-" + "-".join(p.replace(":", "-") for p in parts)


def _rows(assets: list[Asset], per_row: int) -> list[list[Asset]]:
    return [assets[i : i + per_row] for i in range(0, len(assets), per_row)] or []


def layout(inv: Inventory, per_row: int = 10) -> dict[str, tuple[float, float]]:
    """Node positions: clients' rows on top (y > 0), controllers' rows below."""
    top = [a for a in inv.assets if a.role not in CONTROLLERS]
    bottom = [a for a in inv.assets if a.role in CONTROLLERS]
    pos: dict[str, tuple[float, float]] = {}
    top_rows = _rows(top, per_row)
    width = max([len(r) for r in top_rows] + [min(len(bottom), per_row), 1])
    for i, row in enumerate(top_rows):
        y = 1.0 + (len(top_rows) - 1 - i) * 1.0
        for j, a in enumerate(row):
            pos[a.address] = ((j + 0.5) * width / len(row), y)
    # controllers under their clients: order by the mean x of the hosts that talk to them
    peers_x: dict[str, list[float]] = {}
    for e in inv.edges:
        if e.client in pos:
            peers_x.setdefault(e.server, []).append(pos[e.client][0])

    def mean_client_x(a: Asset) -> float:
        xs = peers_x.get(a.address) or [width / 2]
        return sum(xs) / len(xs)

    bottom.sort(key=mean_client_x)
    for i, row in enumerate(_rows(bottom, per_row)):
        y = -1.0 - i * 1.0
        for j, a in enumerate(row):
            pos[a.address] = ((j + 0.5) * width / len(row), y)
    return pos


def draw_map(inv: Inventory, path: Path, per_row: int = 10, title: str | None = None) -> int:
    """Draw the asset map to ``path`` (.svg or .png); returns the number of nodes drawn."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: the map is written as SVG or PNG: name it .svg or .png")
    pos = layout(inv, per_row)
    xs = [p[0] for p in pos.values()] or [0.0]
    ys = [p[1] for p in pos.values()] or [0.0]
    width_in = min(max(8.0, (max(xs) - min(xs) + 1.5) * 1.9), 48.0)
    height_in = min(max(5.0, (max(ys) - min(ys) + 1.6) * 2.0), 40.0)
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "interlock", "font.size": 8}):
        fig = Figure(figsize=(width_in, height_in), layout="constrained")
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.set_xlim(min(xs) - 0.8, max(xs) + 0.8)
        ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
        _draw_edges(ax, inv.edges, pos, labels=len(inv.edges) <= MAX_EDGE_LABELS)
        for a in inv.assets:
            _draw_node(ax, a, pos[a.address])
        roles = [r for r in Role if any(a.role is r for a in inv.assets)]
        protocols = sorted({e.protocol for e in inv.edges})
        handles = [Line2D([], [], marker="o", linestyle="", markersize=9,
                          markerfacecolor=ROLE_COLORS[r], markeredgecolor="black", label=str(r))
                   for r in roles]
        handles += [Line2D([], [], color=PROTOCOL_COLORS.get(p, "#4a5568"), linewidth=2, label=p)
                    for p in protocols]
        if handles:
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                      frameon=False, fontsize=8)
        note = "" if len(inv.edges) <= MAX_EDGE_LABELS else " (edge labels left out: too many)"
        counts = (f"{len(inv.assets)} asset{'s' * (len(inv.assets) != 1)}, {len(inv.edges)} "
                  f"conversation{'s' * (len(inv.edges) != 1)}")
        ax.set_title(title or f"Interlock asset map: {counts}{note}", fontsize=10)
        ax.text(0.0, 0.0, "supervisory hosts above, controllers below; arrows from client to "
                "server", transform=ax.transAxes, fontsize=7, color="#718096")
        metadata = {"Date": None} if suffix == ".svg" else {}
        fig.savefig(path, format=suffix[1:], dpi=150, metadata=metadata)
    return len(pos)


def _draw_node(ax: Axes, a: Asset, xy: tuple[float, float]) -> None:
    x, y = xy
    ax.scatter([x], [y], s=700, c=ROLE_COLORS[a.role], edgecolors="black", linewidths=1.0,
               zorder=3, gid=_gid("asset", a.address))
    lines = [a.address]
    ident = a.identity.model or a.identity.name
    if ident:
        lines.append(ident)
    lines.append(str(a.role))
    below = y < 0
    ax.text(x, y - 0.22 if below else y + 0.22, "\n".join(lines), ha="center",
            va="top" if below else "bottom", fontsize=7, zorder=4,
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none",
                  "alpha": 0.8})


def _set_gid(ann: Annotation, gid: str) -> None:
    """The id goes on the arrow: the annotation's own text is empty and not written."""
    if ann.arrow_patch is not None:
        ann.arrow_patch.set_gid(gid)


def _draw_edges(ax: Axes, edges: tuple[Edge, ...], pos: dict[str, tuple[float, float]],
                labels: bool) -> None:
    pair_count: dict[tuple[str, str], int] = {}
    placed: list[tuple[float, float, Edge]] = []
    for e in edges:
        n = pair_count.get((e.client, e.server), 0)
        pair_count[(e.client, e.server)] = n + 1
        color = PROTOCOL_COLORS.get(e.protocol, "#4a5568")
        width = 0.8 + math.log10(max(e.total, 1))
        (x1, y1), (x2, y2) = pos[e.client], pos[e.server]
        gid = _gid("edge", e.client, e.server, e.protocol)
        if e.client == e.server:  # a host talking to itself: a loop above the node
            ann = ax.annotate("", xy=(x1 + 0.12, y1 + 0.08), xytext=(x1 - 0.12, y1 + 0.08),
                              arrowprops={"arrowstyle": "-|>", "color": color, "linewidth": width,
                                          "connectionstyle": "arc3,rad=-1.6"}, zorder=2)
            _set_gid(ann, gid)
            placed.append((x1 + 0.35, y1 + 0.35, e))
            continue
        same_row = abs(y1 - y2) < 1e-9
        rad = 0.35 if same_row else 0.08 * n
        ann = ax.annotate("", xy=(x2, y2), xytext=(x1, y1),
                          arrowprops={"arrowstyle": "-|>", "color": color, "linewidth": width,
                                      "shrinkA": 14, "shrinkB": 14, "alpha": 0.85,
                                      "connectionstyle": f"arc3,rad={rad}"}, zorder=1)
        _set_gid(ann, gid)
        # the middle of matplotlib's arc3 curve: half way to its control point
        placed.append(((x1 + x2) / 2 + rad * (y2 - y1) / 2, (y1 + y2) / 2 - rad * (x2 - x1) / 2, e))
    if not labels:
        return
    # Labels of edges that cross the same band would sit on one line: stagger them along
    # their edge (from 30 % to 75 % of the way), in the order of their midpoints.
    placed.sort(key=lambda p: (p[1], p[0]))
    for i, (mx, my, e) in enumerate(placed):
        (x1, y1), (x2, y2) = pos[e.client], pos[e.server]
        if e.client != e.server and abs(y1 - y2) > 1e-9:
            t = 0.3 + 0.15 * (i % 4)
            mx, my = x1 + (x2 - x1) * t, y1 + (y2 - y1) * t
        color = PROTOCOL_COLORS.get(e.protocol, "#4a5568")
        ax.text(mx, my, e.label(), fontsize=6, ha="center", va="center", color=color,
                zorder=2, bbox={"boxstyle": "round,pad=0.15", "facecolor": "white",
                                "edgecolor": color, "linewidth": 0.5, "alpha": 0.9})
