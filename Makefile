# ollama-fleet: `make demo` deploys the whole site to the lab VM, `make test` runs every tier.
# Both install what they need: Debian packages (caddy, nftables, python3-venv, debootstrap,
# qemu, ssh, chromium for the browser tests, Prometheus, Alertmanager and blackbox_exporter
# for the monitor's tests and benchmark, PostgreSQL and Redis for the gateway's sessions and
# shared limits: the tests start their own servers in temp dirs), a venv, and the lab's disk image
# (built once as root, then cached).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST := $(BIN)/pytest -q

LAB_DIR := $${OLLAMA_FLEET_LAB_DIR:-$${XDG_CACHE_HOME:-$$HOME/.cache}/ollama-fleet/lab}

.PHONY: setup system-deps lab-image demo test lint unit integration e2e test-gpu-path bench clean

system-deps:
	@if ! command -v caddy >/dev/null || ! command -v nft >/dev/null \
	    || ! PATH="$$PATH:/usr/sbin:/sbin" command -v debootstrap >/dev/null \
	    || ! command -v qemu-system-x86_64 >/dev/null || ! command -v qemu-img >/dev/null \
	    || ! command -v ssh >/dev/null || ! command -v chromium >/dev/null \
	    || ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null \
	    || ! command -v prometheus-alertmanager >/dev/null \
	    || ! command -v prometheus-blackbox-exporter >/dev/null \
	    || ! command -v redis-server >/dev/null || ! [ -x /usr/lib/postgresql/15/bin/initdb ] \
	    || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  echo "installing Debian packages: caddy nftables python3-venv debootstrap qemu-system-x86 qemu-utils openssh-client chromium prometheus prometheus-alertmanager prometheus-blackbox-exporter postgresql redis-server"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq caddy nftables python3-venv \
	    debootstrap qemu-system-x86 qemu-utils openssh-client chromium \
	    prometheus prometheus-alertmanager prometheus-blackbox-exporter postgresql redis-server >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: system-deps $(VENV)/.installed

# debootstrap needs root; the image lands in the invoking user's cache either way
lab-image: setup
	@$(SUDO) env XDG_CACHE_HOME="$${XDG_CACHE_HOME:-$$HOME/.cache}" $(BIN)/ollama-fleet lab build

demo: setup lab-image
	$(BIN)/ollama-fleet lab up
	$(BIN)/ollama-fleet deploy "$(LAB_DIR)/inventory.yml" -y --vault-password-file "$(LAB_DIR)/vault-password" \
	    --checks all --report out/demo/report.html
	$(BIN)/ollama-fleet diagnose "$(LAB_DIR)/inventory.yml" --vault-password-file "$(LAB_DIR)/vault-password" \
	    -o out/demo/diagnose.html
	@echo "report:      out/demo/report.html"
	@echo "diagnosis:   out/demo/diagnose.html"
	@$(BIN)/ollama-fleet lab status | sed -n 's/^  \(status page: .*\)/\1/p' | grep .
	@$(BIN)/ollama-fleet lab access

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
	$(PYTEST) -m "integration and not e2e" && \
	echo "tier integration (real Caddy, nft, simulator, uvicorn): $$(( $$(date +%s) - start )) s"

e2e: setup lab-image
	@start=$$(date +%s); \
	$(PYTEST) -m "e2e and not gpu_path" && \
	echo "tier end to end (the lab VM): $$(( $$(date +%s) - start )) s"

# The gpu role's Debian 12 distro-driver path for real on the lab VM (DKMS build under TCG:
# too long for make test; see docs/deploy.md)
test-gpu-path: setup lab-image
	@start=$$(date +%s); \
	$(PYTEST) -s -m gpu_path tests/gpu_path && \
	echo "gpu path on the lab VM: $$(( $$(date +%s) - start )) s"

test: lint unit integration e2e

bench: setup lab-image
	$(BIN)/python benchmarks/cli/bench_help.py
	$(BIN)/python benchmarks/checks/bench_checks.py
	$(BIN)/python benchmarks/deploy/bench_deploy.py
	$(BIN)/python benchmarks/monitor/bench_monitor.py
	$(BIN)/python benchmarks/diagnose/bench_diagnose.py
	$(BIN)/python benchmarks/sessions/bench_sessions.py

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
