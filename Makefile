# grooming-detect: `make run` and `make test` are all the set-up there is.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is pinned here, before the package, so that pip never resolves the
# package's torch range to a multi-GB CUDA build on a machine without torch.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
ARGS ?=
# apt-get needs root: CI runs as root, a workstation through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	@echo ">> creating $(VENV) with $(PYTHON)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,cluster,transformer]"
	@touch $(STAMP)

.PHONY: help
help: ## list every target with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-13s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: install
install: $(STAMP) ## create .venv and install the package with its dev extras

.PHONY: java
java: ## Java 17 for the Spark engine and its tests: Debian's openjdk-17-jre-headless, unless java 17+ is on PATH
	@if java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then \
		java -version 2>&1 | head -n 1; \
	else \
		echo ">> installing openjdk-17-jre-headless (Spark 4 needs Java 17 or later)"; \
		$(SUDO) mkdir -p /usr/share/man/man1; \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			openjdk-17-jre-headless; \
	fi

.PHONY: run
run: $(STAMP) ## run data -> features -> train -> evaluate -> report on the synthetic corpus (ARGS="model=... data=...")
	$(BIN)/grooming-detect $(ARGS)

.PHONY: test
test: $(STAMP) ## run the fast test tier, every test not marked slow (ARGS= passes pytest options)
	$(BIN)/python -m pytest -m "not slow" --durations=15 $(ARGS)

.PHONY: test-fast
test-fast: $(STAMP) ## the edit loop: unit tests only, no pipeline runs (about 2 minutes; CI runs everything)
	$(BIN)/python -m pytest -m "not slow and not pipeline" -q $(ARGS)

.PHONY: test-slow
test-slow: $(STAMP) ## run the slow tier: multiruns, launchers, tracking server, kill and race tests
	$(BIN)/python -m pytest -m slow $(ARGS)

.PHONY: lint
lint: $(STAMP) ## ruff (lint and format), the import layering (lint-imports) and mypy on src/
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/lint-imports
	$(BIN)/mypy

.PHONY: format
format: $(STAMP) ## rewrite the code in ruff's format and apply safe lint fixes
	$(BIN)/ruff format src tests scripts
	$(BIN)/ruff check --fix src tests scripts

.PHONY: docs
docs: $(STAMP) ## serve the documentation site (MkDocs Material) with live reload on http://127.0.0.1:8000
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

.PHONY: docs-build
docs-build: $(STAMP) ## build the documentation into site/ with --strict: a broken link or anchor fails it
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

.PHONY: card
card: $(STAMP) ## regenerate MODEL_CARD.md from a fresh run of the reference configuration
	$(BIN)/grooming-detect report.publish_dir=$(CURDIR) $(ARGS)

.PHONY: bench
bench: $(STAMP) ## default baseline end to end at 0.1x/0.3x/1x PAN training size and test size, vs a naive reference
	$(BIN)/python scripts/bench_scale.py $(ARGS)

.PHONY: bench-persist
bench-persist: $(STAMP) ## save/load seconds and MiB of a 400k-term vocabulary model on real chat text
	$(BIN)/python scripts/bench_persist.py $(ARGS)

.PHONY: bench-ingest
bench-ingest: $(STAMP) ## parse the synthetic corpus at PAN-2012 scale: messages/s and peak memory
	$(BIN)/python scripts/bench_ingest.py $(ARGS)

.PHONY: bench-models
bench-models: $(STAMP) ## tfidf_logreg, two_stage, embedding_logreg, sentinel on the same splits: quality [CI], ECE, fit s, peak memory, scoring msg/s (ARGS="--models ...")
	$(BIN)/python scripts/bench_models.py $(ARGS)

.PHONY: bench-compare
bench-compare: $(STAMP) ## tfidf_logreg vs the transformer (15 min CPU budget) on real-text corpora, int8 scoring too
	$(BIN)/python scripts/bench_compare.py $(ARGS)

.PHONY: bench-serve
bench-serve: $(STAMP) ## the served MLflow model: p50/p95 latency and requests/s of 50-message conversations
	$(BIN)/python scripts/bench_serve.py $(ARGS)

.PHONY: bench-stream
bench-stream: $(STAMP) ## grooming-detect-score --stream on real chat text: messages/s beside a naive re-scorer
	$(BIN)/python scripts/bench_stream.py $(ARGS)

.PHONY: bench-spark
bench-spark: $(STAMP) java ## score a 2M-message real-text chat log in one process and on Spark local[2]: messages/s, peak memory
	$(BIN)/python scripts/bench_spark.py $(ARGS)

.PHONY: bench-onnx
bench-onnx: $(STAMP) ## the ONNX exports (tfidf_logreg, and embedding_logreg when trained) on real chat text: MB, ms per message and per document on one core, difference vs Python
	$(BIN)/python scripts/bench_onnx.py $(ARGS)

.PHONY: bench-startup
bench-startup: $(STAMP) ## how long --help, a config error and scoring 10 messages take to answer (median of 5)
	$(BIN)/python scripts/bench_startup.py $(ARGS)

.PHONY: bench-transformer
bench-transformer: $(STAMP) ## transformer training/inference throughput and peak memory (CPU or GPU)
	$(BIN)/python scripts/bench_transformer.py $(ARGS)

.PHONY: verify
verify: $(STAMP) ## verify a PAN-2012 download: make verify ROOT=/path/to/pan12
	$(BIN)/grooming-detect-verify $(ROOT)

.PHONY: ui
ui: $(STAMP) ## open the MLflow UI on the project's tracking database (http://127.0.0.1:5000)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

.PHONY: clean
clean: ## remove generated data, outputs, logs, scores and the built docs (keeps the MLflow store and .venv)
	rm -rf data outputs logs scores stream site risk.onnx risk-int8.onnx

.PHONY: clean-mlflow
clean-mlflow: ## remove the MLflow tracking store (mlflow.db, mlartifacts): every logged run and model
	rm -rf mlflow.db mlartifacts

.PHONY: distclean
distclean: clean clean-mlflow ## also remove the MLflow store and the virtual environment
	rm -rf $(VENV)
