"""Figures for the evaluate stage (matplotlib, PNG, titled and labelled for a reviewer)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import PrecisionRecallDisplay

from grooming_detect.io import write_with


def precision_recall_figure(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, path: Path
) -> Path:
    """Author-level PR curves, one per split, with the chance level (the positive rate)."""
    figure, axis = plt.subplots(figsize=(6, 5))
    for split, (y_true, scores) in curves.items():
        PrecisionRecallDisplay.from_predictions(
            y_true,
            scores,
            name=split,
            ax=axis,
            plot_chance_level=True,
            chance_level_kw={"linestyle": ":"},
        )
    axis.set_title(title)
    axis.set_xlabel("Recall (share of predators found)")
    axis.set_ylabel("Precision (share of alerts that are predators)")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    figure.tight_layout()
    write_with(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))
    plt.close(figure)
    return path
