# Two commands on a fresh machine with Python 3.11 and make:
#   make demo  — set up, then run a simulated day of the demo district through the system
#   make test  — set up, then run the checks and the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup tools demo up test lint unit integration e2e faults format schemas clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[embedded,dev]'
	touch $(STAMP)

# promtool (Debian's `prometheus` package) for the alert-rule tests, and headless Chromium
# (Debian's `chromium`, with a CJK font so its screenshots show Chinese names) for the big
# screen's browser test. Installed when we can (root with apt-get); elsewhere those tests
# skip and say why.
tools:
	@if ! command -v promtool >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	fi
	@if { ! command -v chromium >/dev/null 2>&1 || [ ! -d /usr/share/fonts/truetype/wqy ]; } && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-wqy-zenhei >/dev/null; \
	fi

demo: setup
	$(BIN)/gridloop demo

up: setup
	$(BIN)/gridloop up

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

test: lint tools
	$(BIN)/pytest -q

unit: setup
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

e2e: setup
	$(BIN)/pytest -q tests/e2e

# The fault suite (kills, outages, poison, replay): long, so not part of `make test`. It
# prints a summary and rewrites docs/reliability.md with the figures.
faults: setup
	$(BIN)/pytest -q -p no:cacheprovider tests/faults

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schemas: setup
	$(BIN)/gridloop schemas export schemas/json

clean:
	rm -rf $(VENV) .gridloop .mypy_cache .pytest_cache .ruff_cache
