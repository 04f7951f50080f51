# Two commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test bench lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/complaints db upgrade
	$(BIN)/complaints definitions deploy processes --keep-newer
	$(BIN)/complaints demo-users
	@bash scripts/run.sh

test: install
	$(BIN)/pytest

bench: install
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/timers.py

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var
