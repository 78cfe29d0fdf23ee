"""``grooming-detect-export``: a trained model as ONNX that scores units on the device with ONNX
Runtime (a phone app, a browser), see ``docs/onnx.md``: ``tfidf_logreg`` as one file that scores
unit documents; ``embedding_logreg`` (``design: message_scores``) as a model file that scores
units from their tokenized messages and a tokenizer file beside it (``FILE.tokenizer.onnx``,
onnxruntime-extensions' BERT tokenizer).

The model is a model folder written by the train stage or an MLflow model URI, as for
``grooming-detect-score``. Models the graphs cannot reproduce (behavioural features, sentinel,
pooled vectors, the transformer, aggregated inputs), and an export whose scores differ from
Python's beyond the stated tolerance, are refused in one line, exit status 2 (nothing is
written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from grooming_detect.errors import ExportUnsupportedError, MissingExtraError, UntrustedModelError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grooming-detect-export",
        description="Export a trained model to ONNX for scoring on the device with ONNX Runtime.",
    )
    parser.add_argument(
        "--onnx",
        required=True,
        metavar="MODEL",
        help="model folder (outputs/<data>/<model>/latest/model) or MLflow model URI",
    )
    parser.add_argument("--out", required=True, type=Path, help="the .onnx file to write")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="tfidf_logreg: store the idf and coefficient tables as int8; embedding_logreg: "
        "quantize the encoder's weights to int8 (about a quarter of the size; scores within "
        "the stated int8 tolerance, checked and printed)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``grooming-detect-export``; returns the exit status."""
    args = _parser().parse_args(argv)
    # Imported here: --help and argument errors answer without scikit-learn or MLflow.
    from grooming_detect.scoring.messages import load_scoring_model
    from grooming_detect.scoring.onnx_export import export
    from grooming_detect.tracking import TrackingError

    try:
        model, meta = load_scoring_model(args.onnx)
        report = export(model, meta, args.out, int8=args.int8)
    except (
        ExportUnsupportedError,
        MissingExtraError,
        UntrustedModelError,
        FileNotFoundError,
        TrackingError,
        ValueError,
    ) as error:
        print(f"grooming-detect-export: error: {error}", file=sys.stderr)
        return 2
    print(report.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
