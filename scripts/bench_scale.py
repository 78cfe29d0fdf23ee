"""How cost grows with data: the default baseline end to end at several corpus sizes (a script).

For each size (0.1x, 0.3x and 1x the PAN-2012 training corpus, and the PAN-2012 test corpus, in
messages and conversations, with predators in proportion), the embedded real-text corpus is
generated (untimed; real chitchat-dataset conversations, reused with surface variation beyond the
host pool, so the vocabulary grows like real chat), split 70 % training / 30 % test, and then,
each in a fresh process:

* ``data -> features -> train -> evaluate -> report`` of the default baseline (``tfidf_logreg``
  with its default settings): wall time per stage (from the MLflow child runs), messages/s of the
  data and features stages, the process's peak resident memory, the saved model's size and the
  test author F0.5;
* the streaming parser alone on the training XML: messages/s, and the distinct lower-cased word
  types of the training text;
* a naive reference, the common public approach: ``xml.etree.ElementTree`` parse of the whole
  training and test files, pandas rows, scikit-learn ``TfidfVectorizer`` + ``LogisticRegression``
  on the author texts; wall time, peak memory, vocabulary size and test F0.5 at 0.5, and the
  ratio of our whole run's wall time to theirs;
* a rigorous reference, plain scikit-learn with the default run's rigour on the same author
  documents and the same features (word 1-2-gram and ``char_wb`` 2-5-gram ``TfidfVectorizer``,
  sublinear tf, min_df 2; ``LogisticRegression`` C=4, balanced): author-grouped 5-fold
  out-of-fold scores, Platt calibration (a sigmoid fitted on their logits), the F0.5-maximising
  threshold on the calibrated out-of-fold scores, a refit on all training authors, the test
  authors scored once, and 1,000 bootstrap resamples of the test author F0.5; wall time, peak
  memory, test F0.5 and PR-AUC, and the ratio of our whole run's wall time to its
  (``ours/rigorous``: like for like, where ``ours/naive`` compares with less work);
* ``grooming-detect-score`` on the test XML with the trained model: messages/s once the model is
  loaded, whole (parse, features, model, CSVs) and without the XML parse.

Results go to ``bench-results/scale.json`` and a table. Usage:
``python scripts/bench_scale.py [--sizes 0.1,0.3,1,test] [--json PATH] [--override K=V ...]``
(``--override`` passes Hydra overrides to the pipeline run only, e.g. ``decision=holdout``
to time it without cross-fitting; the corpus and the naive reference are unchanged).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grooming_detect.io import write_json

PAN_TRAIN = {"conversations": 66_927, "messages": 903_607, "predators": 142}
PAN_TEST = {"conversations": 155_128, "messages": 2_058_781, "predators": 254}
BIN = Path(sys.executable).parent
STAGES = ("data", "features", "train", "evaluate", "report")

PARSE = """
import json, sys, time
from grooming_detect.data import pan12
from grooming_detect.profiling import peak_rss_mib
started = time.perf_counter()
columns = pan12.parse_messages(sys.argv[1], show_progress=False)
seconds = time.perf_counter() - started
types = {word for text in columns.text for word in text.lower().split()}
print(json.dumps({"messages": len(columns), "seconds": seconds, "peak_rss_mib": peak_rss_mib(),
                  "word_types": len(types)}))
"""

#: The common public approach to the files: ElementTree, pandas rows, one document per author
#: (both references start the clock before it).
READ_AUTHORS = """
def rows(path):
    root = ET.parse(path).getroot()
    return pd.DataFrame([
        {"conversation_id": c.get("id"), "author": (m.findtext("author") or "").strip(),
         "text": m.findtext("text") or ""}
        for c in root.iter("conversation") for m in c.iter("message")])
def authors(frame, ids):
    docs = frame.groupby("author")["text"].agg(" ".join).reset_index()
    docs["label"] = docs["author"].isin(ids)
    return docs
ids = lambda p: {l.strip() for l in open(p, encoding="utf-8") if l.strip()}
train = authors(rows(sys.argv[1]), ids(sys.argv[2]))
test = authors(rows(sys.argv[3]), ids(sys.argv[4]))
"""

NAIVE = """
import json, sys, time, xml.etree.ElementTree as ET
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from grooming_detect.profiling import peak_rss_mib
started = time.perf_counter()
{read_authors}vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
model = LogisticRegression(max_iter=2000, class_weight="balanced")
model.fit(vectorizer.fit_transform(train["text"]), train["label"])
scores = model.predict_proba(vectorizer.transform(test["text"]))[:, 1]
seconds = time.perf_counter() - started
from sklearn.metrics import fbeta_score
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss_mib(),
                  "test_authors": len(test), "vocabulary": len(vectorizer.vocabulary_),
                  "test_f0_5": fbeta_score(test["label"], scores >= 0.5, beta=0.5)}))
"""


RIGOROUS = """
import json, sys, time, xml.etree.ElementTree as ET
import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, fbeta_score, precision_recall_curve
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline, make_union
from grooming_detect.profiling import peak_rss_mib
started = time.perf_counter()
{read_authors}def model():
    return make_pipeline(
        make_union(
            TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2),
            TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 5), min_df=2),
        ),
        LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000),
    )
def logit(p):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p)).reshape(-1, 1)
texts, y = train["text"], train["label"].to_numpy()
oof = np.zeros(len(train))
folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=42)
for fit_rows, held in folds.split(texts, y, groups=train["author"]):
    fold_model = model().fit(texts.iloc[fit_rows], y[fit_rows])
    oof[held] = fold_model.predict_proba(texts.iloc[held])[:, 1]
platt = LogisticRegression(C=1e6).fit(logit(oof), y)
precision, recall, thresholds = precision_recall_curve(y, platt.predict_proba(logit(oof))[:, 1])
f05 = 1.25 * precision * recall / np.maximum(0.25 * precision + recall, 1e-12)
threshold = thresholds[np.argmax(f05[:-1])]
final = model().fit(texts, y)
scores = platt.predict_proba(logit(final.predict_proba(test["text"])[:, 1]))[:, 1]
labels, named = test["label"].to_numpy(), scores >= threshold
rng = np.random.default_rng(42)
resamples = (rng.integers(0, len(labels), len(labels)) for _ in range(1000))
boot = [fbeta_score(labels[i], named[i], beta=0.5, zero_division=0) for i in resamples]
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss_mib(),
                  "test_f0_5": fbeta_score(labels, named, beta=0.5, zero_division=0),
                  "test_pr_auc": average_precision_score(labels, scores),
                  "test_f0_5_interval": [float(np.quantile(boot, 0.025)),
                                         float(np.quantile(boot, 0.975))]}))
"""

SCORE = """
import json, sys, tempfile, time
from pathlib import Path
from grooming_detect.scoring import batch, messages
from grooming_detect.data import pan12
from grooming_detect.profiling import peak_rss_mib
messages.load_scoring_model(sys.argv[1])  # the imports a load needs (skops), untimed
started = time.perf_counter()
messages.load_scoring_model(sys.argv[1])
load = time.perf_counter() - started
with tempfile.TemporaryDirectory() as out:
    started = time.perf_counter()
    batch.score_file(sys.argv[1], Path(sys.argv[2]), Path(out))
    total = time.perf_counter() - started
started = time.perf_counter()
messages = len(pan12.parse_messages(sys.argv[2], show_progress=False))
parse = time.perf_counter() - started
print(json.dumps({"messages": messages, "load_seconds": load, "score_seconds": total - load,
                  "parse_seconds": parse, "peak_rss_mib": peak_rss_mib()}))
"""


def _python(code: str, *args: str) -> dict:
    out = subprocess.run(
        [str(BIN / "python"), "-c", code, *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _sizes(name: str) -> dict[str, int]:
    base = PAN_TEST if name == "test" else {k: round(v * float(name)) for k, v in PAN_TRAIN.items()}
    return base


def _overrides(name: str, root: Path) -> list[str]:
    size = _sizes(name)
    train = {k: round(v * 0.7) for k, v in size.items()}
    test = {k: size[k] - train[k] for k in size}
    return [
        f"paths.root={root}",
        f"tracking.uri=sqlite:///{root}/mlflow.db",
        f"data.name=bench-{name}",
        f"data.generator.n_train_conversations={train['conversations']}",
        f"data.generator.n_train_messages={train['messages']}",
        f"data.generator.n_train_predators={max(2, train['predators'])}",
        f"data.generator.n_test_conversations={test['conversations']}",
        f"data.generator.n_test_messages={test['messages']}",
        f"data.generator.n_test_predators={max(2, test['predators'])}",
    ]


def _stage_seconds(root: Path, run_id: str) -> dict[str, float]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    parent = client.get_run(run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    return {r.data.tags["stage"]: (r.info.end_time - r.info.start_time) / 1000 for r in children}


def _evaluate_metric(root: Path, run_id: str, key: str) -> float:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    parent = client.get_run(run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and tags.stage = 'evaluate'",
    )
    return float(children[0].data.metrics.get(key, float("nan"))) if children else float("nan")


def bench(name: str, root: Path, extra: list[str] | None = None) -> dict:
    overrides = _overrides(name, root)
    run_overrides = [*overrides, *(extra or [])]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    # Generate the corpus first, untimed (the generator is not part of the pipeline's cost).
    subprocess.run(
        [
            str(BIN / "python"),
            "-c",
            "import sys; from hydra import compose, initialize_config_dir;"
            "from grooming_detect.config import config_dir;"
            "from grooming_detect.data.stage import corpus_root\n"
            "with initialize_config_dir(config_dir=str(config_dir()), version_base='1.3'):\n"
            "    print(corpus_root(compose(config_name='config', overrides=sys.argv[1:])))",
            *overrides,
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    started = time.perf_counter()
    completed = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "PEAK_KB %M",
            str(BIN / "grooming-detect"),
            *run_overrides,
            f"stages=[{','.join(STAGES)}]",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - started
    peak_kb = int(
        next(
            line.split()[1] for line in completed.stderr.splitlines() if line.startswith("PEAK_KB")
        )
    )
    run_id = next(
        line.split()[2] for line in completed.stdout.splitlines() if line.startswith("MLflow run:")
    )
    stages = _stage_seconds(root, run_id)
    test_f05 = _evaluate_metric(root, run_id, "test/author/f0_5")
    test_pr_auc = _evaluate_metric(root, run_id, "test/author/pr_auc")
    model_files = sorted(root.glob("outputs/**/model/model.skops"))
    model_mib = model_files[-1].stat().st_size / 2**20 if model_files else float("nan")
    corpus = next((root / "data" / "raw" / "synthetic").iterdir())
    from grooming_detect.data import pan12

    files = pan12.find_files(corpus)
    parse = _python(PARSE, str(files.train_xml))
    corpus_files = (
        str(files.train_xml),
        str(files.train_predators),
        str(files.test_xml),
        str(files.test_problem1),
    )
    naive = _python(NAIVE.replace("{read_authors}", READ_AUTHORS), *corpus_files)
    rigorous = _python(RIGOROUS.replace("{read_authors}", READ_AUTHORS), *corpus_files)
    model_dirs = sorted(root.glob("outputs/**/model/model.json"))
    score = _python(SCORE, str(model_dirs[-1].parent), str(files.test_xml))
    messages = _sizes(name)["messages"]
    result = {
        "size": name,
        "overrides": extra or [],
        "messages": messages,
        "conversations": _sizes(name)["conversations"],
        "wall_seconds": wall,
        "stage_seconds": stages,
        "peak_rss_mib": peak_kb / 1024,
        "data_messages_per_second": messages / stages["data"],
        "features_messages_per_second": messages / stages["features"],
        "parse_messages_per_second": parse["messages"] / parse["seconds"],
        "naive_seconds": naive["seconds"],
        "naive_peak_rss_mib": naive["peak_rss_mib"],
        "naive_vocabulary": naive["vocabulary"],
        "naive_test_f0_5": naive["test_f0_5"],
        "rigorous_seconds": rigorous["seconds"],
        "rigorous_peak_rss_mib": rigorous["peak_rss_mib"],
        "rigorous_test_f0_5": rigorous["test_f0_5"],
        "rigorous_test_f0_5_interval": rigorous["test_f0_5_interval"],
        "rigorous_test_pr_auc": rigorous["test_pr_auc"],
        "test_f0_5": test_f05,
        "test_pr_auc": test_pr_auc,
        "train_word_types": parse["word_types"],
        "model_mib": model_mib,
        # grooming-detect-score on the test XML with the trained model, the model once loaded:
        # messages/s of the whole scoring (parse, features, model, CSVs) and of the rest once
        # the XML parse (timed alone on the same file) is taken out.
        "score_messages": score["messages"],
        "score_messages_per_second": score["messages"] / score["score_seconds"],
        "score_after_parse_messages_per_second": score["messages"]
        / max(score["score_seconds"] - score["parse_seconds"], 1e-9),
        "score_peak_rss_mib": score["peak_rss_mib"],
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0.1,0.3,1,test")
    parser.add_argument("--json", type=Path, default=Path("bench-results/scale.json"))
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="a Hydra override for the pipeline run (repeatable), e.g. decision=holdout",
    )
    args = parser.parse_args()
    rows = []
    print(
        f"{'size':>6}{'messages':>11}{'data s':>8}{'feat s':>8}{'train s':>8}{'eval s':>8}"
        f"{'total s':>9}{'peak MiB':>9}{'parse msg/s':>12}{'feat msg/s':>11}"
        f"{'naive s':>9}{'naive MiB':>10}{'ours/naive':>11}{'word types':>11}{'model MiB':>10}"
        f"{'F0.5':>6}{'naive F0.5':>11}{'score msg/s':>12}{'w/o parse':>10}"
        f"{'rigor s':>9}{'ours/rigorous':>14}{'rigor F0.5':>11}{'PR-AUC':>7}{'rigor PR-AUC':>13}"
    )
    for name in args.sizes.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            row = bench(name, Path(tmp), args.override)
        rows.append(row)
        s = row["stage_seconds"]
        print(
            f"{name:>6}{row['messages']:>11,}{s['data']:>8.1f}{s['features']:>8.1f}"
            f"{s['train']:>8.1f}{s['evaluate']:>8.1f}{row['wall_seconds']:>9.1f}"
            f"{row['peak_rss_mib']:>9.0f}{row['parse_messages_per_second']:>12,.0f}"
            f"{row['features_messages_per_second']:>11,.0f}{row['naive_seconds']:>9.1f}"
            f"{row['naive_peak_rss_mib']:>10.0f}{row['wall_seconds'] / row['naive_seconds']:>11.2f}"
            f"{row['train_word_types']:>11,}{row['model_mib']:>10.1f}{row['test_f0_5']:>6.3f}"
            f"{row['naive_test_f0_5']:>11.3f}{row['score_messages_per_second']:>12,.0f}"
            f"{row['score_after_parse_messages_per_second']:>10,.0f}"
            f"{row['rigorous_seconds']:>9.1f}"
            f"{row['wall_seconds'] / row['rigorous_seconds']:>14.2f}"
            f"{row['rigorous_test_f0_5']:>11.3f}{row['test_pr_auc']:>7.3f}"
            f"{row['rigorous_test_pr_auc']:>13.3f}",
            flush=True,
        )
    write_json(
        args.json,
        {
            "rows": rows,
            "note": "ours/naive compares our whole process (data -> report: parsing, features, "
            "training, saving and logging the model, evaluation with intervals and figures, "
            "report) with the naive parse-to-fitted-and-scored script, on the same files; "
            "ours/rigorous with plain scikit-learn doing the default run's procedure (grouped "
            "5-fold out-of-fold scores, Platt calibration, F0.5 threshold, refit, 1,000 "
            "bootstrap resamples of the test F0.5) on the same files",
        },
    )
    print(f"results: {args.json}")


if __name__ == "__main__":
    main()
