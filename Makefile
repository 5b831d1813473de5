# blockmon — the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# OONI's own data library, in a venv of its own: oonidata 0.3.0 pins click~=8.0 and
# cryptography~=38, which cannot sit beside ours. tests/test_ooni_export.py loads our exports with it.
OONI_VENV  ?= .venv-oonidata
OONI_STAMP := $(OONI_VENV)/.installed

.PHONY: install oonidata demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres]'
	touch $(STAMP)

install: $(STAMP)

$(OONI_STAMP):
	$(PYTHON) -m venv $(OONI_VENV)
	$(OONI_VENV)/bin/pip install --quiet 'oonidata==0.3.0'
	touch $(OONI_STAMP)

oonidata: $(OONI_STAMP)

## demo: install, then run the monitor on the briefing's targets against the offline lab (~1 min)
demo: $(STAMP)
	$(BIN)/blockmon demo

## test: install, then run every test (slow end-to-end ones included)
test: $(STAMP) $(OONI_STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not slow'

## lint: ruff and mypy --strict (not part of `make test`: new linter releases must not fail CI)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(OONI_VENV) build *.egg-info .pytest_cache
