"""The logged MLflow model is the whole scorer: the pyfunc, ``grooming-detect-score`` and the
evaluate stage give the same calibrated risk; the registry; a served model over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from grooming_detect import pipeline
from grooming_detect.data import pan12
from grooming_detect.data.stage import corpus_root
from grooming_detect.scoring import score_file
from grooming_detect.serving import OUTPUT_COLUMNS, local_server
from grooming_detect.stage import latest_dir


def _trained(compose_cfg, model: str, *extra: str):
    cfg = compose_cfg(
        "scale=tiny",
        f"model={model}",
        "evaluate.bootstrap.n_resamples=20",
        "evaluate.top_k=5",
        "progress=false",
        "tracking.register=true",
        *extra,
    )
    result = pipeline.run(cfg)
    mlflow.set_tracking_uri(cfg.tracking.uri)
    client = MlflowClient(cfg.tracking.uri)
    train = next(
        r for r in client.search_runs([result.experiment_id]) if r.data.tags.get("stage") == "train"
    )
    return cfg, train.data.tags["model_uri"]


def _test_messages(cfg) -> pd.DataFrame:
    processed = Path(cfg.paths.processed) / str(cfg.data.name)
    messages = pd.read_parquet(processed / "messages.parquet")
    messages = messages[messages["split"] == "test"]
    return messages[["conversation_id", "line", "author", "time", "text"]].reset_index(drop=True)


def _three_ways(cfg, model_uri: str) -> None:
    """Evaluate stage, grooming-detect-score (MLflow URI) and the pyfunc: the same risk."""
    evaluated = pd.read_parquet(
        latest_dir(cfg.paths.run_dir, "evaluation") / "test-author-scores.parquet"
    ).set_index("id")["score"]
    test_xml = pan12.find_files(corpus_root(cfg)).test_xml
    authors_csv, _ = score_file(
        model_uri, test_xml, Path(cfg.paths.root) / "scored", batch_conversations=0
    )
    scored = pd.read_csv(authors_csv, dtype={"author": str}).set_index("author")["score"]
    served = mlflow.pyfunc.load_model(model_uri).predict(_test_messages(cfg))
    assert list(served.columns) == list(OUTPUT_COLUMNS)
    authors = served[served["level"] == "author"].set_index("id")["risk"]
    assert set(evaluated.index) == set(scored.index) == set(authors.index)
    ids = sorted(evaluated.index)
    np.testing.assert_allclose(scored[ids], evaluated[ids], rtol=0, atol=1e-9)
    np.testing.assert_allclose(authors[ids], evaluated[ids], rtol=0, atol=1e-9)
    threshold = served["threshold"].iloc[0]
    assert (served["flagged"] == (served["risk"] >= threshold)).all()
    assert served["model_version"].str.contains("@").all()


def test_pyfunc_score_command_and_evaluate_agree_and_register(default_run) -> None:
    """The default run's logged model, its score command and its evaluation agree; registered,
    the version carries the test measures and the card and is loadable by alias."""
    from omegaconf import OmegaConf

    from grooming_detect.io import read_json
    from grooming_detect.reporting.stage import register

    cfg, result, client = default_run
    mlflow.set_tracking_uri(cfg.tracking.uri)
    model_uri = client.get_run(result.run_id).data.tags["model_uri"]
    _three_ways(cfg, model_uri)
    # The registry (the report stage calls `register` when tracking.register is true).
    cfg = OmegaConf.merge(cfg, {"tracking": {"registered_model_name": "gd-test-model"}})
    evaluation = latest_dir(cfg.paths.run_dir, "evaluation")
    meta = read_json(latest_dir(cfg.paths.run_dir, "model") / "model.json")
    card = (latest_dir(cfg.paths.run_dir, "report") / "MODEL_CARD.md").read_text()
    register(cfg, meta, read_json(evaluation / "evaluation.json"), card)
    version = client.get_model_version_by_alias("gd-test-model", "candidate")
    evaluated = read_json(evaluation / "evaluation.json")["metrics"]["test/author/pr_auc"]
    assert float(version.tags["test/author/pr_auc"]) == pytest.approx(evaluated, abs=1e-12)
    assert "# Model card" in version.description and len(version.description) <= 5000
    # The bare estimator stays beside it for researchers.
    train_run = client.get_run(version.run_id)
    assert train_run.data.tags["estimator_uri"] != train_run.data.tags["model_uri"]
    # models:/<name>@candidate is what a service loads.
    served = mlflow.pyfunc.load_model("models:/gd-test-model@candidate")
    assert len(served.predict(_test_messages(cfg).head(200)))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["behaviour_gbm", "transformer"])
def test_other_models_agree_three_ways(compose_cfg, model: str, request) -> None:
    extra: list[str] = []
    if model == "transformer":
        tiny_bert = request.getfixturevalue("tiny_bert")
        extra = [
            f"model.estimator.name_or_path={tiny_bert}",
            "model.estimator.max_steps=4",
            "model.estimator.max_length=64",
            "model.estimator.stride=16",
            "model.estimator.batch_size=8",
        ]
    cfg, model_uri = _trained(compose_cfg, model, *extra)
    _three_ways(cfg, model_uri)


def test_bad_requests_are_refused_with_the_reason(tmp_path: Path) -> None:
    """Requests are checked before any model work: a fitted toy model is enough here."""
    from sklearn.dummy import DummyClassifier

    from grooming_detect.models.persistence import save_model
    from grooming_detect.serving import ARTIFACT, INPUT_EXAMPLE, GroomingRiskModel

    toy = DummyClassifier(strategy="prior").fit(pd.DataFrame({"text": ["a", "b"]}), [0, 1])
    save_model(toy, {"unit": "author", "input": "author", "threshold": 0.5}, tmp_path / "m")
    context = SimpleNamespace(artifacts={ARTIFACT: str(tmp_path / "m")})
    scorer = GroomingRiskModel()
    scorer.load_context(context)
    good = scorer.predict(None, INPUT_EXAMPLE)
    assert set(good["level"]) == {"author", "conversation"}
    cases = [
        (INPUT_EXAMPLE.drop(columns=["text"]), r"missing column\(s\) \['text'\]"),
        (INPUT_EXAMPLE.assign(text=[1, "a", "b"]), r"request:1: text=1 is a int; expected a str"),
        (INPUT_EXAMPLE.assign(author=["a", "", "b"]), r"request:2: empty conversation_id or"),
        (INPUT_EXAMPLE.assign(time=["18:01", "25 past", None]), r"request:2: time='25 past'"),
        (INPUT_EXAMPLE.assign(line=[1, 1, 2]), r"request:2: .*line=1\) duplicates row 1"),
        (INPUT_EXAMPLE.head(0), "no messages"),
        (INPUT_EXAMPLE.assign(line=[1, 2.5, 3]), r"request:2: line=2.5; expected a 1-based"),
        (INPUT_EXAMPLE.assign(line=[1, True, 3]), r"request:2: line=True"),
        (INPUT_EXAMPLE.assign(text=["a", ["b"], "c"]), r"request:2: text=\['b'\] is a list"),
        (
            INPUT_EXAMPLE.drop(columns=["time"]).assign(timestamp=["now", None, None]),
            r"request:1: timestamp='now' is not an ISO 8601",
        ),
    ]
    for frame, reason in cases:
        with pytest.raises(MlflowException, match=reason) as refused:
            scorer.predict(None, frame)
        assert refused.value.get_http_status_code() == 400
    # A failure of ours is a 500 that says so, with no stack trace in the answer.
    scorer.model = object()
    with pytest.raises(MlflowException, match="internal error while scoring") as failed:
        scorer.predict(None, INPUT_EXAMPLE)
    assert failed.value.get_http_status_code() == 500
    assert "Traceback" not in json.dumps(failed.value.serialize_as_json())


def _post(url: str, payload: object) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_served_model_answers_like_the_score_command(compose_cfg, tmp_path: Path) -> None:
    cfg, _ = _trained(compose_cfg, "tfidf_logreg", "stages=[data,features,train,evaluate,report]")
    name = f"grooming-detect-{cfg.data.name}-tfidf_logreg"
    messages = _test_messages(cfg)
    two = messages[messages["conversation_id"].isin(messages["conversation_id"].unique()[:2])]
    chat = tmp_path / "two.csv"
    two.to_csv(chat, index=False)
    authors_csv, conversations_csv = score_file(f"models:/{name}@candidate", chat, tmp_path / "s")
    with local_server(
        f"models:/{name}@candidate", str(cfg.tracking.uri), log_file=tmp_path / "server.log"
    ) as url:
        status, answer = _post(url, {"dataframe_records": two.to_dict("records")})
        assert status == 200
        served = pd.DataFrame(answer["predictions"])
        expected = pd.read_csv(authors_csv, dtype={"author": str}).set_index("author")["score"]
        got = served[served["level"] == "author"].set_index("id")["risk"]
        np.testing.assert_allclose(got[expected.index], expected, rtol=0, atol=1e-9)
        conversations = pd.read_csv(conversations_csv, dtype={"conversation_id": str})
        got = served[served["level"] == "conversation"].set_index("id")["risk"]
        np.testing.assert_allclose(
            got[conversations["conversation_id"]], conversations["score"], rtol=0, atol=1e-9
        )
        bad = two.drop(columns=["text"]).to_dict("records")
        status, answer = _post(url, {"dataframe_records": bad})
        assert status == 400 and "text" in answer["message"]
        wrong = two.assign(line="first").to_dict("records")
        status, answer = _post(url, {"dataframe_records": wrong})
        assert status == 400 and "line" in answer["message"]
        assert "Traceback" not in json.dumps(answer)
