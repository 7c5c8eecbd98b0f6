# Kairos developer commands. `make demo` and `make test` work on a fresh machine: they build .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell for p in $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12 2>/dev/null) python3.12 python3; do $$p -c 'import sys' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PORT ?= 8787

# Training on the shared Online Retail II data (training/README.md); the model goes to out/ unless MODEL says
# otherwise (MODEL=models/default replaces the shipped one). ARGS adds options: make train ARGS="--threads 2".
DATA ?= ../shared/data/online_retail_ii
MODEL ?= out/model

.PHONY: dev test unit e2e demo serve lint format validate bench build pr clean train evaluate card insights adapt

dev: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# Everything: unit and functional tests, then the end-to-end runs (what CI runs).
test: dev
	$(PY) -m pytest -q -n auto
	$(PY) -m pytest -q -m e2e

# The logic on in-memory fakes, no moto: seconds.
unit: dev
	$(PY) -m pytest -q tests/unit

e2e: dev
	$(PY) -m pytest -q -m e2e

demo: dev
	$(PY) -m kairos_local.closed_loop $(ARGS)

serve: dev
	PORT=$(PORT) $(PY) -m kairos_local.server

# Each prints its progress on stderr and its results on stdout.
train: dev
	$(PY) -m training train --events $(DATA) --out $(MODEL) $(ARGS)

evaluate: dev
	$(PY) -m training evaluate --events $(DATA) $(ARGS)

card: dev
	$(PY) -m training card --events $(DATA) --model $(MODEL) $(ARGS)

insights: dev
	$(PY) -m training insights --events $(DATA) --html out/insights.html $(ARGS)

adapt: dev
	$(PY) -m training adapt online-retail --input $(DATA) --out out/events.jsonl.gz $(ARGS)

lint: dev
	$(PY) -m ruff check kairos kairos_local functions training tests bench
	$(PY) -m ruff format --check kairos kairos_local functions training tests bench
	$(VENV)/bin/cfn-lint template.yaml

format: dev
	$(PY) -m ruff format kairos kairos_local functions training tests bench
	$(PY) -m ruff check --fix kairos kairos_local functions training tests bench

validate: dev
	$(VENV)/bin/cfn-lint template.yaml

bench: dev
	$(PY) bench/ingest.py
	$(PY) bench/score.py
	$(PY) bench/journey_cost.py

# sam build without Docker (layers and the score function build through their Makefiles), then prove that
# every shared library the score function needs is in the package or in the python3.12 arm64 runtime.
SAM_VENV := .venv-sam
build:
	test -x $(SAM_VENV)/bin/sam || { $(PYTHON) -m venv $(SAM_VENV) && $(SAM_VENV)/bin/pip install --quiet aws-sam-cli; }
	PATH="$(dir $(PYTHON)):$$PATH" $(SAM_VENV)/bin/sam build
	$(PYTHON) tools/check_shared_libs.py .aws-sam/build/ScoreFunction .aws-sam/build/KairosLayer .aws-sam/build/MlLayer
	$(PYTHON) tools/package_size.py .aws-sam/build/ScoreFunction .aws-sam/build/KairosLayer .aws-sam/build/MlLayer

pr: lint test

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache
