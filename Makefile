# Two commands for a new user: `make tour` and `make test`.
# Both build .venv with whatever python3 is on PATH (3.11+) and install what they need.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: tour test bench lint clean

tour: $(VENV)/.installed
	$(BIN)/respool tour

test: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy --strict src
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(BIN)/respool bench

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy --strict src

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "respool needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV) || { $(PYTHON) -m pip install --user --quiet virtualenv && $(PYTHON) -m virtualenv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip

# The package's version lives in src/respool/__init__.py (pyproject reads it from there), so a
# change to it reinstalls too: the installed metadata, and `pip show`, must not go stale.
$(VENV)/.installed: $(BIN)/python pyproject.toml src/respool/__init__.py
	$(BIN)/python -m pip install --quiet -e '.[tour]'
	touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml src/respool/__init__.py
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
