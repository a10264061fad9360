# Sluice developer entry points. `make help` lists them.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: help deps venv lint unit test demo bench bench-scale chaos crds cluster-up cluster-down clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: ## install host packages (apt) the cluster and demo need
	hack/install-deps

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP) ## create .venv with the operator and dev tools

lint: venv ## ruff, formatting, mypy --strict, import layering
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo

unit: venv ## fast unit tests, no cluster
	$(VENV)/bin/pytest tests/unit -q

test: deps lint ## everything CI runs: lint, unit and integration tests on the local cluster
	$(VENV)/bin/pytest tests -q

demo: deps venv ## local real-node cluster, operator via Helm, example ETL run end to end
	hack/demo

bench: venv ## latency benchmark on the kwok cluster (prints figures, writes bench/results/)
	$(PY) bench/latency.py

bench-scale: venv ## scale benchmark: a 5,000-task run, 11,000 runs, a restart (~15 min)
	$(PY) bench/scale.py

chaos: venv ## chaos benchmark: 50 runs while the operator, API server and etcd are killed (~3 min)
	$(PY) bench/chaos.py

crds: venv ## regenerate crds/ from the API models
	$(PY) hack/gen-crds

cluster-up: ## local cluster with kwok nodes
	hack/cluster up --nodes kwok

cluster-down: ## stop the local cluster and remove its state
	hack/cluster down

clean: ## remove the venv and caches (not ~/.cache/sluice)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
