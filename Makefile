# ollama-fleet: `make demo` runs the main job on the local testbed, `make test` runs every tier.
# Both install what they need: Debian packages (caddy, nftables, python3-venv) and a venv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST := $(BIN)/pytest -q

.PHONY: setup system-deps demo test lint unit integration bench clean

system-deps:
	@if ! command -v caddy >/dev/null || ! command -v nft >/dev/null \
	    || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  echo "installing Debian packages: caddy nftables python3-venv"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq caddy nftables python3-venv >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: system-deps $(VENV)/.installed

demo: setup
	$(BIN)/ollama-fleet demo

lint: setup
	@start=$$(date +%s); \
	$(BIN)/ruff check src tests benchmarks && \
	$(BIN)/ruff format --check src tests benchmarks && \
	$(BIN)/mypy && \
	echo "tier lint: $$(( $$(date +%s) - start )) s"

unit: setup
	@start=$$(date +%s); \
	$(PYTEST) -m "not integration" && \
	echo "tier unit: $$(( $$(date +%s) - start )) s"

integration: setup
	@start=$$(date +%s); \
	$(PYTEST) -m integration && \
	echo "tier integration (real Caddy, simulator, uvicorn): $$(( $$(date +%s) - start )) s"

test: lint unit integration

bench: setup
	$(BIN)/python benchmarks/checks/bench_checks.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
