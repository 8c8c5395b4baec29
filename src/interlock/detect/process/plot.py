"""Scores over time with the threshold and the attack windows shaded (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt

from interlock.detect.process.metrics import episodes


def plot_scores(
    path: Path, scores: npt.NDArray[np.float64], threshold: float, label: npt.NDArray[np.int8], title: str
) -> None:
    fig, ax = plt.subplots(figsize=(12, 3.5))
    for i, e in enumerate(episodes(label)):
        ax.axvspan(e.start, e.stop, color="tab:red", alpha=0.2, label="attack" if i == 0 else None)
    ax.plot(scores, lw=0.7, color="tab:blue", label="score")
    ax.axhline(threshold, color="black", ls="--", lw=0.8, label="threshold")
    # Scores can spike by orders of magnitude; a log axis keeps the normal band readable.
    if np.all(scores > 0) and scores.max() / max(scores.min(), 1e-12) > 100:
        ax.set_yscale("log")
    ax.set_xlabel("row")
    ax.set_ylabel("anomaly score")
    ax.set_title(title)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
