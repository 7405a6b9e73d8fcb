# medcap: every set-up step lives here. On a fresh machine `make test` and
# `make reproduce-model80` create .venv and install the package on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
MEDCAP := $(BIN)/medcap
PYTEST_ARGS ?=

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: install test test-fast lint bench reproduce-model80 reproduce-model70 clean help

help:
	@echo "make test                run the whole test suite (installs .venv on first use)"
	@echo "make test-fast           skip tests marked slow"
	@echo "make reproduce-model80   paper 000 Model-80: features -> train -> evaluate -> report (results/model80)"
	@echo "make reproduce-model70   paper 000 Model-70 (results/model70)"
	@echo "make bench               ratio benchmarks in bench/"
	@echo "make lint                ruff"

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check medcap tests bench experiments

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

reproduce-model80: $(STAMP)
	$(MEDCAP) train model80 --workdir results/model80 $(if $(MEDICAT_DIR),--data-dir $(MEDICAT_DIR),)

reproduce-model70: $(STAMP)
	$(MEDCAP) train model70 --workdir results/model70 $(if $(MEDICAT_DIR),--data-dir $(MEDICAT_DIR),)

clean:
	rm -rf build dist *.egg-info .pytest_cache
