"""Helpers for the notebooks: corpus statistics from the processed tables, run comparison from
MLflow. The notebooks import only from here, so they cannot drift from the package."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import PrecisionRecallDisplay

from grooming_detect import tracking
from grooming_detect.config import project_root
from grooming_detect.data.schema import read_table
from grooming_detect.evaluation.calibration import reliability_curve
from grooming_detect.stage import latest_dataset_dir


def notebook_settings() -> dict[str, str]:
    """Dataset, project root and tracking URI, from the environment (GD_DATASET,
    GROOMING_DETECT_ROOT, MLFLOW_TRACKING_URI) with the project's defaults."""
    root = project_root()
    return {
        "dataset": os.environ.get("GD_DATASET", "synthetic"),
        "root": str(root),
        "tracking_uri": os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root}/mlflow.db",
        "experiment": os.environ.get("GD_EXPERIMENT", "grooming-detect"),
    }


def load_tables(dataset: str, root: str | Path) -> dict[str, pd.DataFrame]:
    """The canonical tables of a processed dataset (the settings the data stage built last)."""
    directory = latest_dataset_dir(Path(root) / "data" / "processed", dataset)
    return {name: read_table(directory, name) for name in ("messages", "conversations", "authors")}


def class_balance(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Authors, predators and their share per split."""
    authors = tables["authors"]
    table = authors.groupby("split").agg(
        authors=("author", "size"), predators=("is_predator", lambda s: int(s.fillna(False).sum()))
    )
    table["predator_share"] = table["predators"] / table["authors"]
    return table


def conversation_shape(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Distribution of conversation lengths and authors per conversation, per split."""
    conversations = tables["conversations"]
    return conversations.groupby("split")[["n_messages", "n_authors"]].describe()


def hour_of_day(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """Messages per hour of day (messages without a time are left out and counted apart)."""
    hours = pd.to_numeric(tables["messages"]["time"].str.slice(0, 2), errors="coerce")
    counts = hours.value_counts().sort_index()
    counts.index = counts.index.astype(int)
    counts.name = "messages"
    return counts


def evaluate_runs(tracking_uri: str, experiment: str) -> pd.DataFrame:
    """One row per evaluate-stage run: model, dataset and the headline test measures."""
    client = tracking.client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ValueError(f"no MLflow experiment {experiment!r} at {tracking_uri}")
    runs = client.search_runs([found.experiment_id], filter_string="tags.stage = 'evaluate'")
    rows = []
    for run in runs:
        parent = client.get_run(run.data.tags["mlflow.parentRunId"])
        rows.append(
            {
                "run_id": run.info.run_id,
                "model": parent.data.tags.get("model"),
                "dataset": parent.data.tags.get("dataset"),
                **{k: v for k, v in run.data.metrics.items() if k.startswith("test/")},
            }
        )
    return pd.DataFrame(rows)


def _scores(run_id: str, tracking_uri: str) -> pd.DataFrame:
    folder = tracking.download_artifacts(
        run_id=run_id, artifact_path="evaluation", tracking_uri=tracking_uri
    )
    path = next(folder.glob("test-*-scores.parquet"))
    return pd.read_parquet(path)


def compare_figure(runs: pd.DataFrame, tracking_uri: str) -> Figure:
    """Test PR curves and reliability diagrams of several runs side by side."""
    figure, (pr_axis, reliability_axis) = plt.subplots(1, 2, figsize=(11, 4.5))
    reliability_axis.plot([0, 1], [0, 1], linestyle=":", color="grey")
    for run in runs.itertuples():
        scores = _scores(run.run_id, tracking_uri)
        name = f"{run.model} ({run.run_id[:6]})"
        PrecisionRecallDisplay.from_predictions(
            scores["label"], scores["score"], name=name, ax=pr_axis
        )
        predicted, observed = reliability_curve(scores["label"], scores["score"], 10)
        reliability_axis.plot(predicted, observed, marker="o", label=name)
    pr_axis.set_title("Test precision-recall")
    reliability_axis.set(
        title="Test reliability (quantile bins)",
        xlabel="Mean predicted probability",
        ylabel="Observed share positive",
    )
    reliability_axis.legend()
    figure.tight_layout()
    return figure
