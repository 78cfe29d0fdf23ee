"""Every way of scoring new chat data with a trained model.

* `messages`: the step every scorer shares: load a model (folder or MLflow URI), read messages,
  rebuild the views and features it was trained with, score, calibrate and aggregate to authors
  and conversations (`score_messages`).
* `batch`: a file (PAN-2012 XML or a chat log) to author and conversation score CSVs.
* `stream`: message by message, each conversation's risk so far and its warnings.
* `incremental`: the exact incremental state a TF-IDF + logistic-regression model keeps per
  conversation, so that a message costs its own length.
* `pyfunc` and `pyfunc_model`: the whole scorer as an MLflow pyfunc model (and its
  models-from-code file), what ``mlflow models serve`` and Spark jobs load.
* `spark`: `batch` and `stream` on Apache Spark, with the same numbers (pyspark imported inside
  its functions only).
* `cli`: ``grooming-detect-score``, the command line over `batch`, `stream` and `spark`.
* `onnx_export` and `export_cli`: ``grooming-detect-export``, a TF-IDF + logistic-regression
  model as one ONNX graph that scores unit documents with ONNX Runtime alone, on a phone or in a
  browser (``docs/onnx.md``).
"""
