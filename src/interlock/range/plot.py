"""Trends of a range run from its historian: what the HMI showed beside what the plant did.

One panel per key tag of the plant (its envelope tags first), the truth as a line, the HMI's
reading as dots, the operating envelope shaded, SIS trips marked. Optional ``windows`` (start,
end, label) in plant seconds shade attack windows, so a drill's report and ``interlock range up
--plot`` draw the same picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The tags worth a panel, per plant: the process values operators watch and the limits care about.
KEY_TAGS = {
    "gas-pipeline": ("discharge_bar", "suction_bar", "machine_flow_kg_s", "compressor_speed"),
    "reactor": ("reactor_temp_k", "coolant_temp_k", "conc_a_mol_l", "feed_flow_lpm"),
    "refinery": (
        "heater_outlet_c",
        "tube_skin_c",
        "bottoms_level_pct",
        "flooding_pct",
        "distillate_purity_pct",
    ),
}


def series(table: Any, tag: str, source: str, device: str | None = None) -> tuple[list[float], list[float]]:
    cols = table.to_pydict() if hasattr(table, "to_pydict") else table
    t, v = [], []
    for pt, dev, tg, val, src in zip(
        cols["plant_time_s"], cols["device"], cols["tag"], cols["value"], cols["source"], strict=True
    ):
        if tg == tag and src == source and (device is None or dev == device):
            t.append(pt)
            v.append(val)
    return t, v


def plot_trends(
    table: Any,
    plant_id: str,
    out: Path,
    *,
    title: str = "",
    windows: Sequence[tuple[float, float, str]] = (),
    trips: Sequence[tuple[float, str]] = (),
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from interlock.range.plants import PLANTS

    envelope = PLANTS[plant_id].ENVELOPE
    limits = {lim.tag: lim for lim in PLANTS[plant_id].SAFETY_LIMITS}
    tags = KEY_TAGS.get(plant_id, tuple(envelope))
    fig, axes = plt.subplots(len(tags), 1, figsize=(10, 2.1 * len(tags)), sharex=True)
    for ax, tag in zip(axes, tags, strict=True):
        tt, tv = series(table, tag, "truth")
        ht, hv = series(table, tag, "hmi", "plc-1")
        ax.plot([x / 60 for x in tt], tv, color="tab:blue", lw=1.2, label="plant (truth)")
        if ht:
            ax.plot([x / 60 for x in ht], hv, ".", color="tab:orange", ms=1.5, label="HMI reading")
        if tag in envelope:
            lo, hi = envelope[tag]
            ax.axhspan(lo, hi, color="tab:green", alpha=0.08, label="envelope")
        lim = limits.get(tag)
        if lim is not None:
            for bound in (lim.low, lim.high):
                if bound is not None:
                    ax.axhline(bound, color="tab:red", lw=0.8, ls="--", label=f"{lim.hazard} limit")
        for start, end, label in windows:
            ax.axvspan(start / 60, end / 60 if end > start else start / 60 + 0.2, color="tab:red", alpha=0.12)
            if ax is axes[0] and label:
                ax.annotate(
                    label,
                    (start / 60, 1.0),
                    xycoords=("data", "axes fraction"),
                    fontsize=7,
                    va="bottom",
                    rotation=0,
                )
        for t, name in trips:
            ax.axvline(t / 60, color="black", lw=0.8)
            if ax is axes[-1]:
                ax.annotate(name, (t / 60, 0.02), xycoords=("data", "axes fraction"), fontsize=7)
        ax.set_ylabel(tag, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, loc="upper left", ncols=4)
    axes[-1].set_xlabel("plant time (min)")
    fig.suptitle(title or f"{plant_id}: plant truth and HMI readings", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
