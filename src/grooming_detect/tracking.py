"""The one module that talks to MLflow: experiment set-up, runs, params, metrics and artifacts."""

from __future__ import annotations

import fcntl
import importlib.metadata
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
from omegaconf import DictConfig, OmegaConf

from grooming_detect.errors import TrackingUnreachableError

log = logging.getLogger(__name__)

LOCAL_SCHEMES = ("sqlite", "file", "")

#: The experiment tag MLflow 3's UI reads to choose an experiment's view, and its value for
#: traditional machine learning: the experiment opens on its runs table, not on the empty GenAI
#: overview (the UI's `ExperimentKind` enum).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"

#: The run tag MLflow shows as a run's description (Markdown), in the runs table and on the run.
DESCRIPTION_TAG = "mlflow.note.content"

#: The longest tag value MLflow's stores keep (`mlflow.utils.validation.MAX_TAG_VAL_LENGTH`).
MAX_TAG_CHARS = 8_000

#: Prefix of the experiment tags that MLflow 3's UI lists as the runs table's saved views (its
#: "Views" menu); ``viewStateShareKey=<id>`` in the runs page's address opens view ``<id>``.
SAVED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
#: Where `mlflow ui` serves by default.
DEFAULT_UI_URL = "http://127.0.0.1:5000"


def is_local_backend(uri: str) -> bool:
    """True for a SQLite database or a directory store on this machine."""
    return urlparse(uri).scheme in LOCAL_SCHEMES


#: Default of ``tracking.connect_timeout_s``: how long to wait for a tracking server to answer.
CONNECT_TIMEOUT_S = 30.0


def wait_for_server(uri: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Wait, visibly and for at most `timeout_s`, until the MLflow server at `uri` answers its
    health check; a local store needs no wait. MLflow's own client would retry silently for
    minutes, then fail with a traceback."""
    import urllib.error
    import urllib.request

    if is_local_backend(uri) or urlparse(uri).scheme not in ("http", "https"):
        return
    health = uri.rstrip("/") + "/health"
    log.info("Connecting to the MLflow tracking server at %s (waiting up to %g s)", uri, timeout_s)
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        try:
            with urllib.request.urlopen(health, timeout=max(0.5, min(5.0, remaining))):
                return
        except urllib.error.HTTPError as error:
            if error.code not in (502, 503, 504):
                return  # a server answered (its health page may be elsewhere or need a login)
            last_error = f"HTTP {error.code} from a gateway: the server behind it is not up"
        except urllib.error.URLError as error:
            if isinstance(error.reason, ssl.SSLError):
                return  # a server answered; MLflow's own TLS settings decide about its certificate
            last_error = str(error.reason)
        except (OSError, ValueError) as error:
            last_error = str(error)
        if time.monotonic() + 1.0 > deadline:
            raise TrackingUnreachableError(
                f"tracking.uri={uri}: no MLflow tracking server answered within {timeout_s:g} s "
                f"({last_error}); start it, or set tracking.uri (or MLFLOW_TRACKING_URI) to a "
                "reachable server or a local sqlite:/// file"
            )
        time.sleep(1.0)


def setup(tracking_cfg: DictConfig) -> str:
    """Point MLflow at `tracking.uri` and return the id of `tracking.experiment_name`.

    A new experiment on a local backend gets `tracking.artifact_location` as its artifact root,
    so artifacts land under the project root whatever the current directory is. A server is
    waited for at most ``tracking.connect_timeout_s``. Runs that a killed process (kill -9, a
    lost node) left RUNNING on this host are marked KILLED (`mark_abandoned_runs`).
    """
    uri = str(tracking_cfg.uri)
    wait_for_server(uri, float(tracking_cfg.get("connect_timeout_s", CONNECT_TIMEOUT_S)))
    mlflow.set_tracking_uri(uri)
    with _sqlite_setup_lock(uri):
        experiment_id = _experiment_id(tracking_cfg, uri)
    mark_abandoned_runs(experiment_id)
    return experiment_id


#: Run tags that say which process owns a run, so a later run can tell a live run from one
#: whose process was killed without a chance to end it.
HOST_TAG, PID_TAG, STARTED_TAG = (
    "grooming_detect.host",
    "grooming_detect.pid",
    "grooming_detect.pid_start",
)


def _process_start(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (Linux), which tells a live
    process from a later one that reuses its pid; None where /proc cannot say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _machine() -> str:
    """This host, its boot and its pid namespace: containers that share a host name but not
    their pids (CI runners, docker --uts=host) must never judge each other's runs."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        boot = namespace = ""
    return f"{socket.gethostname()}/{boot}/{namespace}"


def _owner_tags() -> dict[str, str]:
    pid = os.getpid()
    return {
        HOST_TAG: _machine(),
        PID_TAG: str(pid),
        STARTED_TAG: _process_start(pid) or "",
    }


def _process_alive(pid: int, started: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return not started or _process_start(pid) in (None, started)


def mark_abandoned_runs(experiment_id: str) -> list[str]:
    """Mark KILLED every run of the experiment still RUNNING whose owning process, on this
    host, is gone (killed with -9, or its machine restarted); return their ids. Runs of other
    hosts are left alone: their processes cannot be seen from here."""
    client = mlflow.MlflowClient()
    host = _machine()
    marked = []
    for run in client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    ):
        tags = run.data.tags
        if tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit():
            continue
        if _process_alive(int(tags[PID_TAG]), tags.get(STARTED_TAG, "")):
            continue
        client.set_tag(
            run.info.run_id,
            "killed_reason",
            f"its process {tags[PID_TAG]} on {host.split('/')[0]} ended without ending the run "
            "(kill -9?)",
        )
        client.set_terminated(run.info.run_id, status="KILLED")
        marked.append(run.info.run_id)
    if marked:
        log.warning(
            "Marked %d run(s) KILLED that a killed process had left RUNNING: %s",
            len(marked),
            ", ".join(marked),
        )
    return marked


@contextmanager
def _sqlite_setup_lock(uri: str) -> Iterator[None]:
    """Serialise the first use of a SQLite store across processes (parallel sweep jobs would
    otherwise race on its schema migrations and on creating the experiment)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _experiment_id(tracking_cfg: DictConfig, uri: str) -> str:
    name = str(tracking_cfg.experiment_name)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        location = None
        if is_local_backend(uri) and tracking_cfg.get("artifact_location"):
            artifact_root = Path(str(tracking_cfg.artifact_location)).resolve()
            artifact_root.mkdir(parents=True, exist_ok=True)
            location = artifact_root.as_uri()
        try:
            experiment_id = mlflow.create_experiment(
                name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        except mlflow.exceptions.MlflowException:
            # A parallel job (multirun) created it first: use theirs.
            experiment = mlflow.get_experiment_by_name(name)
            if experiment is None:
                raise
            _ensure_experiment_kind(experiment)
            return experiment.experiment_id
        log.info("Created MLflow experiment %r (id %s) at %s", name, experiment_id, uri)
        return experiment_id
    _ensure_experiment_kind(experiment)
    return experiment.experiment_id


def _ensure_experiment_kind(experiment: Any) -> None:
    """Mark an experiment made before this tag existed (or by someone else) as traditional ML,
    so MLflow's UI opens it on the runs table; a kind already chosen (in the UI) is left alone."""
    if EXPERIMENT_KIND_TAG in (experiment.tags or {}):
        return
    try:
        mlflow.MlflowClient().set_experiment_tag(
            experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
        )
    except mlflow.exceptions.MlflowException as error:  # e.g. a server that refuses the write
        log.warning(
            "Could not tag experiment %s as %s=%s: %s",
            experiment.experiment_id,
            EXPERIMENT_KIND_TAG,
            EXPERIMENT_KIND,
            error,
        )


@contextmanager
def _tracked_run(**start_kwargs: Any) -> Iterator[str]:
    """A run that ends FINISHED, FAILED on an error, or KILLED when the user interrupts
    (Ctrl-C, or SIGTERM: see `terminate_as_interrupt`); MLflow's own context manager marks an
    interrupted run FAILED. The run records its host and process, so a run whose process is
    killed outright (-9) is marked KILLED by the next run (`mark_abandoned_runs`)."""
    start_kwargs["tags"] = {**(start_kwargs.get("tags") or {}), **_owner_tags()}
    run = mlflow.start_run(**start_kwargs)
    try:
        yield run.info.run_id
    except KeyboardInterrupt:
        mlflow.end_run(status="KILLED")
        raise
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run(status="FINISHED")


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (SLURM pre-emption, `kill`, a container stop) like Ctrl-C inside the
    block, so open runs end KILLED instead of staying RUNNING; the previous handler returns
    after. Only the main thread can set signal handlers: elsewhere this does nothing."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum} (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def parent_run(experiment_id: str, run_name: str, tags: Mapping[str, str]) -> Iterator[str]:
    """Open the pipeline's parent run and yield its id."""
    with _tracked_run(experiment_id=experiment_id, run_name=run_name, tags=dict(tags)) as run_id:
        yield run_id


@contextmanager
def stage_run(stage: str, tags: Mapping[str, str] | None = None) -> Iterator[str]:
    """Open a child run for one stage under the active parent run and yield its id."""
    run_tags = {"stage": stage, **(tags or {})}
    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError(f"stage {stage!r}: no parent run is active")
    with _tracked_run(
        experiment_id=parent.info.experiment_id, run_name=stage, nested=True, tags=run_tags
    ) as run_id:
        yield run_id


def delete_run_tree(run_id: str) -> list[str]:
    """Delete run `run_id` and its child runs (MLflow's delete: hidden from the UI and from
    searches, purged by ``mlflow gc``); return the ids deleted, children first."""
    from mlflow.entities import ViewType

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    children = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
        run_view_type=ViewType.ALL,
        max_results=1000,
    )
    deleted = [child.info.run_id for child in children] + [run_id]
    for doomed in deleted:
        client.delete_run(doomed)
    return deleted


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings to dotted keys with string values (MLflow params)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{dotted}."))
        else:
            flat[dotted] = "null" if value is None else str(value)
    return flat


def log_config(cfg: DictConfig, overrides: list[str]) -> None:
    """Log the resolved config as flattened params and as YAML, plus the command-line overrides."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    mlflow.log_params(flatten({str(k): v for k, v in resolved.items()}))
    mlflow.log_text(OmegaConf.to_yaml(cfg, resolve=True), "config/config.yaml")
    mlflow.log_text("\n".join(overrides) + ("\n" if overrides else ""), "config/overrides.txt")


#: What MLflow raises (a missing run, model or experiment; a server that refuses): callers
#: catch this name and never import MLflow themselves.
TrackingError = mlflow.exceptions.MlflowException


def log_metrics(
    metrics: Mapping[str, float], step: int | None = None, run_id: str | None = None
) -> None:
    """Log metrics to the active run, or to `run_id` (the parent run), at `step`, skipping
    values that are not finite."""
    import math

    finite = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    skipped = sorted(set(metrics) - set(finite))
    if skipped:
        log.info("Not logging undefined metrics: %s", ", ".join(skipped))
    if finite:
        mlflow.log_metrics(finite, step=step, run_id=run_id)


def log_params(params: Mapping[str, Any]) -> None:
    """Log params to the active run (values as strings)."""
    mlflow.log_params({k: "null" if v is None else str(v) for k, v in params.items()})


def set_tags(tags: Mapping[str, Any], run_id: str | None = None) -> None:
    """Set tags on the active run, or on `run_id` (e.g. the parent run from inside a stage)."""
    if run_id is None:
        mlflow.set_tags({k: str(v) for k, v in tags.items()})
        return
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, str(value))


def set_description(text: str, run_id: str | None = None) -> None:
    """Set the run's description (Markdown, shown by MLflow's UI) on the active run or `run_id`;
    cut to what the stores keep."""
    if len(text) > MAX_TAG_CHARS:
        note = "\n\n… (truncated)"
        text = text[: MAX_TAG_CHARS - len(note)] + note
    set_tags({DESCRIPTION_TAG: text}, run_id=run_id)


def save_runs_view(
    experiment_id: str,
    view_id: str,
    name: str,
    metrics: list[str],
    params: list[str],
) -> None:
    """Add a saved view of the runs table to the experiment (MLflow 3's UI, "Views" menu): the
    runs' descriptions, `metrics` and `params` as columns, since the table shows none of them
    by default. A view already there (perhaps edited in the UI) is left alone."""
    client = mlflow.MlflowClient()
    key = SAVED_VIEW_TAG_PREFIX + view_id
    if key in (client.get_experiment(experiment_id).tags or {}):
        return
    columns = [
        "attributes.`Description`",
        *(f"metrics.`{metric}`" for metric in metrics),
        *(f"params.`{param}`" for param in params),
    ]
    now = int(time.time() * 1000)
    # The UI's envelope: name, times in ms and the table's state as a JSON string.
    envelope = {
        "name": name,
        "createdAt": now,
        "updatedAt": now,
        "state": json.dumps({"selectedColumns": columns}),
    }
    try:
        client.set_experiment_tag(experiment_id, key, json.dumps(envelope))
    except mlflow.exceptions.MlflowException as error:  # e.g. a server that refuses the write
        log.warning("Could not save the runs-table view %r: %s", name, error)


def runs_view_url(uri: str, experiment_id: str, view_id: str) -> str | None:
    """The address of the experiment's runs table in saved view `view_id`: on the tracking
    server, or where `mlflow ui` serves a local store by default; None for other backends."""
    if urlparse(uri).scheme in ("http", "https"):
        base = uri.rstrip("/")
    elif is_local_backend(uri) and not uri.startswith("databricks"):
        base = DEFAULT_UI_URL
    else:
        return None
    return (
        f"{base}/#/experiments/{experiment_id}/runs"
        f"?viewStateShareKey={view_id}&workflowType=machine_learning"
    )


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    """Log a file or a directory to the active run."""
    target = Path(path)
    if target.is_dir():
        mlflow.log_artifacts(str(target), artifact_path=artifact_path)
    else:
        mlflow.log_artifact(str(target), artifact_path=artifact_path)


def active_run_id() -> str | None:
    """Id of the active run (the current stage's child run inside the pipeline)."""
    run = mlflow.active_run()
    return run.info.run_id if run else None


def model_info(uri: str) -> Any:
    """The `mlflow.models.ModelInfo` of a logged model (``runs:/…``, ``models:/…``)."""
    return mlflow.models.get_model_info(uri)


def download_artifacts(
    uri: str | None = None,
    run_id: str | None = None,
    artifact_path: str | None = None,
    tracking_uri: str | None = None,
) -> Path:
    """A local copy of a model or run artifact; its path."""
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=uri, run_id=run_id, artifact_path=artifact_path, tracking_uri=tracking_uri
        )
    )


def client(tracking_uri: str) -> Any:
    """An `mlflow.MlflowClient` of `tracking_uri` (searches and reads across runs)."""
    return mlflow.MlflowClient(tracking_uri=tracking_uri)


def log_pyfunc_model(
    name: str,
    python_model: Path,
    artifacts: dict[str, str],
    code_paths: list[str],
    signature: Any,
    input_example: Any,
    pip_requirements: list[str],
    metadata: dict[str, Any],
) -> str:
    """Log a models-from-code pyfunc (`python_model` is its code file) to the active run; its
    model URI."""
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=str(python_model),
        artifacts=artifacts,
        code_paths=code_paths,
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
        metadata=metadata,
    )
    return str(info.model_uri)


def log_table(frame: Any, artifact_file: str) -> None:
    """Log a DataFrame as an MLflow table artifact (viewable in the UI's artifact pane)."""
    mlflow.log_table(data=frame, artifact_file=artifact_file)


def log_sklearn_model(
    model: Any,
    example: Any,
    predictions: Any,
    trusted: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    name: str = "model",
) -> str:
    """Log a scikit-learn model in skops format with its signature, the non-default types it
    needs (`trusted`) and `metadata` (threshold, calibrator …); return the model URI."""
    from mlflow.models import infer_signature

    signature = infer_signature(example, predictions)
    # Naming the requirements skips MLflow's slow import-tracing inference of them.
    requirements = [
        f"{package}=={importlib.metadata.version(package)}"
        for package in ("scikit-learn", "skops", "numpy", "scipy", "pandas")
    ]
    info = mlflow.sklearn.log_model(
        model,
        name=name,
        pip_requirements=requirements,
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        signature=signature,
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=trusted or None,
        metadata=metadata,
    )
    return info.model_uri


def log_transformer_model(estimator: Any, metadata: dict[str, Any], name: str = "model") -> str:
    """Log a fine-tuned transformer with ``mlflow.transformers`` (safetensors weights and the
    tokenizer); the estimator's parameters (window rule …) and `metadata` travel with it."""
    import mlflow.transformers

    requirements = [
        f"{package}=={importlib.metadata.version(package)}"
        for package in ("transformers", "torch", "scikit-learn", "pandas")
    ]
    info = mlflow.transformers.log_model(
        transformers_model={"model": estimator.model_, "tokenizer": estimator.tokenizer_},
        name=name,
        task="text-classification",
        pip_requirements=requirements,
        metadata={**metadata, "estimator_params": estimator.get_params()},
    )
    return info.model_uri


#: The longest model-version description MLflow's SQL stores keep.
MAX_DESCRIPTION_CHARS = 5_000


def register_model(
    train_run_id: str,
    name: str,
    alias: str,
    tags: Mapping[str, Any],
    description: str,
) -> str:
    """Register the whole-scorer model of `train_run_id` under `name`, with `tags` (the run's
    test measures), `description` (the model card, shown by the registry) and `alias`; its
    version."""
    client = mlflow.MlflowClient()
    model_uri = client.get_run(train_run_id).data.tags.get("model_uri")
    if not model_uri:
        raise ValueError(
            f"train run {train_run_id} logged no model_uri tag; retrain to register the model"
        )
    version = mlflow.register_model(
        model_uri, name, tags={key: str(value) for key, value in tags.items()}
    ).version
    if len(description) > MAX_DESCRIPTION_CHARS:
        # SQL stores keep 5,000 characters; the whole card is the run's report artifact.
        note = "\n\n… (truncated; the whole card is the run's report/MODEL_CARD.md artifact)"
        description = description[: MAX_DESCRIPTION_CHARS - len(note)] + note
    client.update_model_version(name, version, description=description)
    client.set_registered_model_alias(name, alias, version)
    log.info("Registered %s as %s version %s (alias @%s)", model_uri, name, version, alias)
    return str(version)


def git_commit(root: Path) -> str:
    """The checkout's commit (with `-dirty` when it has uncommitted changes), or `unknown`."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def ui_command(uri: str) -> str:
    """The shell command that opens the MLflow UI on `uri`."""
    if is_local_backend(uri):
        # The venv's own mlflow: a bare `mlflow` fails outside the activated venv.
        return f"{Path(sys.executable).with_name('mlflow')} ui --backend-store-uri {uri}"
    return f"open {uri} in a browser"
