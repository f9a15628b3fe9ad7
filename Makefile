# Developer entry points.  `make install` is incremental: it only reinstalls
# when pyproject.toml changes (the stamp file records the last install).
# `make demo` installs the core alone (what serving a flow locally needs, about a third of the
# full install): the gcp target, Parquet, the test and lint tools and the benchmark peers are
# extras that `make install` (and so `make test`) adds.

PYTHON ?= python3
EXTRAS ?= dev,docs,bench,gcp,parquet
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE_STAMP := $(VENV)/.installed-core

.PHONY: install lint test demo bench reliability docs docs-serve dashboard-screenshot clean

install: $(STAMP)

# $(1): what pip installs ('.' or '.[extras]')
define venv_install
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "bfctl needs Python 3.11+; run e.g. make PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e $(1)
endef

$(STAMP): pyproject.toml
	$(call venv_install,'.[$(EXTRAS)]')
	touch $@ $(CORE_STAMP)

$(CORE_STAMP): pyproject.toml
	$(call venv_install,.)
	touch $@

# ruff's rules and formatting, and mypy: one run covers both configurations in pyproject.toml
# (strict on buildflow/, the SDK users type-check against; the default checks on runtime/,
# providers/ and bfctl/). Each step says what it checks before it starts (mypy is silent until
# it ends, about a minute without its cache, seconds with it) and prints only the problems it finds.
lint: install
	@echo "ruff check: lint rules on every Python file"
	@$(BIN)/ruff check --quiet .
	@echo "ruff format --check: formatting of every Python file"
	@$(BIN)/ruff format --check --quiet .
	@echo "mypy: buildflow/ strictly, bfctl/ runtime/ providers/ by the default checks (about a minute without .mypy_cache, seconds with it)"
	@$(BIN)/mypy

# Two processes, each test file in one of them (module fixtures such as an emulator start once):
# most tests wait on servers and subprocesses, so two cores serve two files at a time. The
# OpenAPI fuzz test runs on its own: Schemathesis gives all its cases one test id, which
# pytest-xdist would run only once.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --ignore=tests/test_openapi_fuzz.py
	$(BIN)/python -m pytest -q tests/test_openapi_fuzz.py

demo: $(CORE_STAMP)
	@echo "Starting examples/hello; try in another terminal:"
	@echo "  curl http://127.0.0.1:8000/bob"
	@echo "  curl http://127.0.0.1:8000/sally"
	cd examples/hello && ../../$(BIN)/bfctl serve

# The reliability tests with much more of everything: fuzz examples, SIGKILLs under load.
reliability: install
	FUZZ_EXAMPLES=1000 CRASH_KILLS=10 $(BIN)/python -m pytest -q tests/test_crash_safety.py \
		tests/test_interrupted_apply.py tests/test_fuzz.py tests/test_openapi_fuzz.py tests/test_collector_batching.py

# The documentation site: every page and the CLI reference (generated from the commands) built
# with --strict into site/; docs-serve rebuilds it on every save at http://127.0.0.1:8001. (The
# theme's notice about MkDocs 2 is turned off: it is not about this site.)
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8001

# docs/dashboard.png, the README's picture of the dashboard: its Requests page with a trace open, as
# the browser test sees it (Chromium and chromium-driver, as .ci/run installs them).
dashboard-screenshot: install
	BFCTL_DASHBOARD_SCREENSHOT=$(CURDIR)/docs/dashboard.png $(BIN)/python -m pytest -q \
		tests/test_dashboard_browser.py -k requests_appear_live

bench: install
	@command -v wrk >/dev/null || echo "wrk not found: figures come from a slower Python client (apt-get install wrk, brew install wrk)"
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
