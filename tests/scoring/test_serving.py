"""The logged MLflow model is the whole scorer: the pyfunc, ``grooming-detect-score`` and the
evaluate stage give the same calibrated risk; the registry; a served model over HTTP."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from local_server import local_server
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from grooming_detect import pipeline
from grooming_detect.data import pan12
from grooming_detect.data.stage import corpus_root
from grooming_detect.scoring.batch import score_file
from grooming_detect.scoring.pyfunc import OUTPUT_COLUMNS
from grooming_detect.stage import dataset_dir, latest_dir


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
    processed = dataset_dir(cfg)
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


@pytest.mark.pipeline
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

    from grooming_detect.models.persistence import ARTIFACT, save_model
    from grooming_detect.scoring.pyfunc import INPUT_EXAMPLE, GroomingRiskModel

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


# -- hostile requests and CSV, through the scoring server's own parsing ------------------------


@pytest.fixture(scope="module")
def toy_pyfunc(tmp_path_factory: pytest.TempPathFactory):
    """The whole-scorer pyfunc over a fitted toy model, saved as `log_pyfunc_model` logs it
    (same code file, artifact and signature) and loaded back: what `mlflow models serve`
    serves, without the HTTP server."""
    from sklearn.dummy import DummyClassifier

    from grooming_detect.models.persistence import ARTIFACT, save_model
    from grooming_detect.scoring import pyfunc
    from grooming_detect.scoring.pyfunc import INPUT_EXAMPLE, signature

    root = tmp_path_factory.mktemp("pyfunc")
    toy = DummyClassifier(strategy="prior").fit(pd.DataFrame({"text": ["a", "b"]}), [0, 1])
    save_model(toy, {"unit": "author", "input": "author", "threshold": 0.5}, root / "m")
    code = Path(pyfunc.__file__).with_name("pyfunc_model.py")
    mlflow.pyfunc.save_model(
        root / "pyfunc",
        python_model=str(code),
        artifacts={ARTIFACT: str(root / "m")},
        signature=signature(),
        # MLflow checks the example against the signature: a typed `line` would fail here.
        input_example=INPUT_EXAMPLE,
        pip_requirements=[],
    )
    return mlflow.pyfunc.load_model(str(root / "pyfunc"))


def _invoke(pyfunc, body: str, content_type: str) -> tuple[int, str]:
    """The scoring server's answer to a POST to /invocations: status and body (or message)."""
    from mlflow.pyfunc import scoring_server

    schema = pyfunc.metadata.get_input_schema()
    try:
        answer = scoring_server.invocations(body, content_type, pyfunc, schema)
    except MlflowException as error:
        return error.get_http_status_code(), error.message
    return answer.status, answer.response


@pytest.mark.xfail(
    strict=True,
    reason="MLflow's server reads text/csv only when every signature column has a pandas type "
    "(Schema.pandas_types); `line` is any-type because each typed choice breaks another path: "
    "long casts 1.5 and true to 1 and 1e300 to -2**63, double and string refuse the int64 "
    "column of an in-process predict (test_in_process_predict_takes_integer_lines)",
)
def test_csv_requests_are_scored_like_json(toy_pyfunc) -> None:
    from grooming_detect.scoring.pyfunc import INPUT_EXAMPLE

    example = INPUT_EXAMPLE.assign(conversation_id=["7", "7", "7"])
    status, answer = _invoke(
        toy_pyfunc,
        json.dumps({"dataframe_records": example.to_dict("records")}),
        "application/json",
    )
    assert status == 200, answer
    expected = pd.DataFrame(json.loads(answer)["predictions"])
    status, answer = _invoke(toy_pyfunc, example.to_csv(index=False), "text/csv")
    assert status == 200, answer
    pd.testing.assert_frame_equal(pd.DataFrame(json.loads(answer)["predictions"]), expected)


def test_in_process_predict_takes_integer_lines(toy_pyfunc) -> None:
    """The loaded pyfunc scores a frame whose ``line`` is an int64 column (as read from a
    table), and names a line that is not an integer rather than casting it."""
    from grooming_detect.scoring.pyfunc import INPUT_EXAMPLE

    assert INPUT_EXAMPLE["line"].dtype == np.int64
    assert set(toy_pyfunc.predict(INPUT_EXAMPLE)["level"]) == {"author", "conversation"}
    with pytest.raises(MlflowException, match=r"request:2: line=2\.5; expected a 1-based"):
        toy_pyfunc.predict(INPUT_EXAMPLE.assign(line=[1.0, 2.5, 3.0]))


#: Values of a message's fields that once made the server answer 500 (or 200 with a wrapped
#: line number); each is now a 400 naming the row and the field.
HOSTILE = [
    ("line", "²", r"line='²'; expected a 1-based integer"),
    ("line", "٣", r"line='٣'; expected a 1-based integer"),
    ("line", 1e300, r"line=1e\+300; expected a 1-based integer"),
    ("line", 10**30, r"line=1000000000000000000000000000000; expected a 1-based integer"),
    ("line", 2**63, r"line=9223372036854775808; expected a 1-based integer"),
    ("line", "9" * 5000, r"line='99999.*; expected a 1-based integer"),
    ("line", [1], r"line=\[1\] is a list; expected a 1-based integer"),
    ("line", {"n": 1}, r"line=\{'n': 1\} is a dict; expected a 1-based integer"),
    ("text", [[["deep"]]], r"text=\[\[\[.*\]\]\] is a list; expected a string"),
    ("author", 10**30, r"author=1000000000000000000000000000000 is a int; expected a string"),
]


@pytest.mark.parametrize(("field", "value", "reason"), HOSTILE, ids=[h[2][:24] for h in HOSTILE])
def test_hostile_json_values_are_400s_naming_the_field(
    toy_pyfunc, field: str, value: object, reason: str
) -> None:
    from grooming_detect.scoring.pyfunc import INPUT_EXAMPLE

    records = INPUT_EXAMPLE.to_dict("records")
    records[1][field] = value
    status, answer = _invoke(
        toy_pyfunc, json.dumps({"dataframe_records": records}), "application/json"
    )
    assert status == 400, answer
    assert re.search(rf"request:2: {reason}", answer), answer
    assert "Traceback" not in answer


def test_values_no_json_parser_passes_are_400s_in_process() -> None:
    """Values MLflow's JSON parser cannot build (nesting past Python's recursion limit, an
    integer over 4,300 digits) still reach a pyfunc called in process: refused the same way."""
    from grooming_detect.data.chatlog import ChatlogFormatError
    from grooming_detect.scoring.pyfunc import INPUT_EXAMPLE, request_messages

    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    for field, value, reason in [
        ("line", deep, r"line=\[\[\[.*is a list; expected a 1-based integer"),
        ("text", deep, r"text=\[\[\[.*is a list; expected a string"),
        ("line", 10**5000, r"line=<an integer of 5,001 digits>; expected a 1-based integer"),
        ("author", 10**5000, r"author=<an integer of 5,001 digits> is a int; expected a str"),
    ]:
        frame = INPUT_EXAMPLE.astype(object)
        frame.at[1, field] = value
        with pytest.raises(ChatlogFormatError, match=rf"request:2: {reason}"):
            request_messages(frame)


@pytest.mark.xfail(
    strict=True,
    reason="MLflow's scoring server decodes the JSON body before the model sees it and catches "
    "only JSONDecodeError there (mlflow.pyfunc.scoring_server._decode_json_input): the "
    "RecursionError of deep nesting and the ValueError of an integer over 4,300 digits are "
    "500s that the pyfunc cannot turn into 400s",
)
@pytest.mark.parametrize(
    "value",
    ["[" * 100_000 + "]" * 100_000, "9" * 5000],
    ids=["nested 100,000 deep", "a 5,000-digit integer"],
)
def test_a_json_body_python_cannot_decode_is_a_400(toy_pyfunc, value: str) -> None:
    body = '{"dataframe_records": [{"conversation_id": "c", "author": "a", "text": "hi", '
    body += f'"line": {value}}}]}}'
    try:
        status, _ = _invoke(toy_pyfunc, body, "application/json")
    except (RecursionError, ValueError):
        status = 500  # uncaught by the server: Starlette answers 500
    assert status == 400


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["1", " 2 ", "²", "٣", "0", "-1", "1.0", "18:05", "2024-03-01T21:10:00"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(
    field=st.sampled_from(["conversation_id", "author", "text", "line", "time", "timestamp"]),
    value=_JSON_VALUES,
)
def test_any_json_value_is_read_or_refused_by_name(field: str, value: object) -> None:
    """Whatever a client puts in a message's field, the request is either read into messages
    the canonical tables accept, or refused with the row: never another exception (a 500)."""
    from grooming_detect.data.chatlog import ChatlogFormatError
    from grooming_detect.data.schema import build_tables
    from grooming_detect.scoring.pyfunc import INPUT_EXAMPLE, request_messages

    frame = INPUT_EXAMPLE.astype(object)
    if field == "timestamp":
        frame = frame.drop(columns=["time"]).assign(timestamp=None)
    frame.at[1, field] = value
    try:
        messages = request_messages(frame)
    except ChatlogFormatError as error:
        assert str(error).startswith("request:"), error
        return
    build_tables(messages.assign(split="score"), predators={"score": set()})
