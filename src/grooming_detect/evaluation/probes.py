"""A probe battery for a corpus: can something that should be blind tell predators apart?

Each probe sees only what it should not need, learns on the train and validation authors (the
template lookup learns nothing), and ranks the test authors; the table gives its test PR-AUC
beside chance (the test positive share). On an honest corpus every probe stays near chance: a
model that beats them reads the behaviour, not the corpus's making.

* ``metadata``: conversation and message counts, conversation lengths and sizes, partners, hour
  of day (gradient boosting; no text).
* ``style``: character statistics of the author's own lines, with no word identity: length,
  casing, end punctuation, emoticons, elongations, digits, apostrophes, sentences per line, a
  sentence followed by a lowercase one (gradient boosting).
* ``partner``: TF-IDF + logistic regression on what the author's partners wrote, never the
  author's own lines.
* ``template_lookup`` (generated corpora only): no training; the share of an author's lines
  that hold a wording of the generator's *training* marker families
  (`data.synthetic.markers`). High when test reuses the training wordings; near chance when test
  markers are new wording, as they are by default.

Targets (`TARGETS`): metadata, style and partner probes at most twice chance, the template
lookup at most 0.30. `experiment=audit` runs the battery (``evaluate.audit.probes``) and the
card shows the table; ``tests/evaluation/test_probes.py`` checks the bounds on a generated
corpus.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

PROBES = ("metadata", "style", "partner", "template_lookup")
#: Upper bounds on an honest corpus: ("chance", k) means k x chance; ("abs", v) an absolute PR-AUC.
TARGETS: dict[str, tuple[str, float]] = {
    "metadata": ("chance", 2.0),
    "style": ("chance", 2.0),
    "partner": ("chance", 2.0),
    "template_lookup": ("abs", 0.30),
}
_TRAIN_SPLITS = ("train", "validation")


@dataclass(frozen=True)
class ProbeResult:
    probe: str
    pr_auc: float
    chance: float
    bound: float
    n_test_authors: int
    n_test_positives: int

    @property
    def within(self) -> bool:
        return bool(self.pr_auc <= self.bound)


def probe_battery(
    messages: pd.DataFrame,
    authors: pd.DataFrame,
    template_wordings: Sequence[str] | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Run every probe on the canonical ``messages`` and ``authors`` tables (splits train,
    validation, test; author labels). `template_wordings` (``{slot}`` marks a slot) enables the
    template lookup. One row per probe: pr_auc, chance, ratio, bound, within, sizes."""
    from sklearn.metrics import average_precision_score

    authors = authors.drop_duplicates("author").set_index("author")
    labels = authors["is_predator"].fillna(False).astype(bool)
    test = authors.index[authors["split"] == "test"]
    train = authors.index[authors["split"].isin(_TRAIN_SPLITS)]
    y_test = labels.reindex(test).to_numpy()
    y_train = labels.reindex(train).to_numpy()
    if y_test.sum() == 0 or y_train.sum() == 0 or y_train.all():
        raise ValueError(
            "the probe battery needs positive and negative authors in train/validation and "
            f"positives in test; got {int(y_train.sum())} and {int(y_test.sum())} positives"
        )
    chance = float(y_test.mean())
    scores: dict[str, np.ndarray] = {}
    numeric = {"metadata": metadata_features(messages), "style": style_features(messages)}
    for name, features in numeric.items():
        scores[name] = _boosted_scores(features, train, y_train, test, seed)
    scores["partner"] = _partner_scores(messages, train, y_train, test)
    if template_wordings:
        scores["template_lookup"] = (
            template_lookup_scores(messages, template_wordings)
            .reindex(test, fill_value=0.0)
            .to_numpy()
        )
    rows = []
    for name, score in scores.items():
        kind, value = TARGETS[name]
        bound = value * chance if kind == "chance" else value
        result = ProbeResult(
            name,
            float(average_precision_score(y_test, score)),
            chance,
            bound,
            len(test),
            int(y_test.sum()),
        )
        rows.append({**result.__dict__, "ratio": result.pr_auc / chance, "within": result.within})
    table = pd.DataFrame(rows)
    for row in table.itertuples():
        log.info(
            "probe %-15s test PR-AUC %.3f (chance %.3f, %.1fx; bound %.3f)",
            row.probe,
            row.pr_auc,
            row.chance,
            row.ratio,
            row.bound,
        )
    return table


# --- features ------------------------------------------------------------------------------


def metadata_features(messages: pd.DataFrame) -> pd.DataFrame:
    """Per author: counts, conversation shapes, partners and hours; no text."""
    sizes = messages.groupby("conversation_id").agg(
        conv_messages=("line", "size"), conv_authors=("author", "nunique")
    )
    rows = messages[["conversation_id", "author", "time"]].join(sizes, on="conversation_id")
    hour = pd.to_numeric(rows["time"].str.slice(0, 2), errors="coerce")
    rows = rows.assign(
        night=((hour >= 22) | (hour < 6)).astype(float), hour_known=hour.notna().astype(float)
    )
    per_author = rows.groupby("author").agg(
        n_messages=("conversation_id", "size"),
        n_conversations=("conversation_id", "nunique"),
        mean_conv_messages=("conv_messages", "mean"),
        max_conv_messages=("conv_messages", "max"),
        mean_conv_authors=("conv_authors", "mean"),
        night_share=("night", "mean"),
        hour_known=("hour_known", "mean"),
    )
    pairs = messages[["conversation_id", "author"]].drop_duplicates()
    partners = pairs.merge(pairs, on="conversation_id", suffixes=("", "_other"))
    partners = partners[partners["author"] != partners["author_other"]]
    per_author["n_partners"] = (
        partners.groupby("author")["author_other"].nunique().reindex(per_author.index).fillna(0)
    )
    per_author["messages_per_conversation"] = (
        per_author["n_messages"] / per_author["n_conversations"]
    )
    return per_author


_EMOTICON = re.compile(r"(?:[:;=xX]-?[()DPp3/\\|]|<3|\^\^|\bxD\b|\blol\b|\bhaha\w*)")
_ELONGATION = re.compile(r"(\w)\1\1")
_SENTENCE_LOWER = re.compile(r"[.!?]\s+[a-z]")


def style_features(messages: pd.DataFrame) -> pd.DataFrame:
    """Per author: character and layout statistics of their own lines, no word identity."""
    text = messages["text"].fillna("")
    stripped = text.str.strip()
    last = stripped.str[-1:].fillna("")
    letters = text.str.count(r"[A-Za-z]").clip(lower=1)
    frame = pd.DataFrame(
        {
            "author": messages["author"],
            "chars": text.str.len(),
            "words": text.str.split().str.len().fillna(0),
            "empty": (stripped == "").astype(float),
            "end_period": (last == ".").astype(float),
            "end_question": (last == "?").astype(float),
            "end_exclaim": (last == "!").astype(float),
            "end_none": (~last.isin([".", "?", "!"])).astype(float),
            "starts_upper": stripped.str[:1].str.isupper().fillna(False).astype(float),
            "upper_share": text.str.count(r"[A-Z]") / letters,
            "digit_share": text.str.count(r"[0-9]") / letters,
            "emoticon": text.str.contains(_EMOTICON).astype(float),
            "elongation": text.str.count(_ELONGATION).gt(0).astype(float),
            "apostrophe": text.str.contains("'").astype(float),
            "comma": text.str.contains(",").astype(float),
            "sentences": text.str.count(r"[.!?]+(?:\s|$)"),
            "sentence_then_lower": text.str.contains(_SENTENCE_LOWER).astype(float),
            "lower_i": text.str.contains(r"\bi\b").astype(float),
        }
    )
    grouped = frame.groupby("author")
    features = grouped.mean()
    features["chars_sd"] = grouped["chars"].std().fillna(0.0)
    return features


def _boosted_scores(
    features: pd.DataFrame,
    train: pd.Index,
    y_train: np.ndarray,
    test: pd.Index,
    seed: int,
) -> np.ndarray:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, class_weight="balanced", random_state=seed
    )
    model.fit(features.reindex(train).fillna(0.0), y_train)
    return model.predict_proba(features.reindex(test).fillna(0.0))[:, 1]


def partner_texts(messages: pd.DataFrame) -> pd.Series:
    """Per author: everything the other authors of their conversations wrote, joined."""
    by_conversation = messages.groupby(["conversation_id", "author"], sort=False)["text"].agg(
        " ".join
    )
    frame = by_conversation.reset_index()
    pairs = frame[["conversation_id", "author"]]
    joined = pairs.merge(frame, on="conversation_id", suffixes=("", "_other"))
    joined = joined[joined["author"] != joined["author_other"]]
    return joined.groupby("author")["text"].agg(" ".join)


def _partner_scores(
    messages: pd.DataFrame, train: pd.Index, y_train: np.ndarray, test: pd.Index
) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts = partner_texts(messages)
    probe = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000),
        LogisticRegression(max_iter=2000, class_weight="balanced", C=1.0),
    )
    probe.fit(texts.reindex(train).fillna(""), y_train)
    return probe.predict_proba(texts.reindex(test).fillna(""))[:, 1]


# --- template lookup -----------------------------------------------------------------------

_NORMALISE = re.compile(r"[^a-z0-9' ]+")


def _normalise(text: pd.Series) -> pd.Series:
    lowered = text.fillna("").str.lower().str.replace(_NORMALISE, " ", regex=True)
    return " " + lowered.str.replace(r"\s+", " ", regex=True).str.strip() + " "


def lookup_pattern(wordings: Sequence[str]) -> re.Pattern[str]:
    """One regular expression matching any of `wordings` in normalised text (a slot matches one
    to three words)."""
    alternatives = set()
    for wording in wordings:
        normal = _normalise(pd.Series([wording.replace("{", " SLOTOPEN").replace("}", " ")]))[0]
        words = normal.strip().split(" ")
        parts = [
            r"[\w']+(?: [\w']+){0,2}" if word.startswith("slotopen") else re.escape(word)
            for word in words
            if word
        ]
        alternatives.add(" ".join(parts))
    return re.compile(r" (?:" + "|".join(sorted(alternatives, key=len, reverse=True)) + r") ")


def template_lookup_scores(messages: pd.DataFrame, wordings: Sequence[str]) -> pd.Series:
    """Per author: the share of their lines holding a wording of `wordings`."""
    pattern = lookup_pattern(wordings)
    hits = _normalise(messages["text"]).str.contains(pattern).astype(float)
    return hits.groupby(messages["author"].to_numpy()).mean()


def training_wordings(held_out_families: str = "test") -> list[str]:
    """Every wording of the marker families the generator's training split renders."""
    from grooming_detect.data.synthetic.markers import families_for, wordings

    return [
        wording
        for families in families_for("train", held_out_families).values()
        for family in families
        for wording in wordings(family)
    ]
