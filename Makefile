# Developer entry points.  `make install` is incremental: it only reinstalls
# when pyproject.toml changes (the stamp file records the last install).

PYTHON ?= python3
EXTRAS ?= dev,bench,gcp,parquet
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "bfctl needs Python 3.11+; run e.g. make PYTHON=python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[$(EXTRAS)]'
	touch $@

test: install
	$(BIN)/python -m pytest -q

demo: install
	@echo "Starting examples/hello; try in another terminal:"
	@echo "  curl http://127.0.0.1:8000/bob"
	@echo "  curl http://127.0.0.1:8000/sally"
	cd examples/hello && ../../$(BIN)/bfctl serve

bench: install
	@command -v wrk >/dev/null || echo "wrk not found: figures come from a slower Python client (apt-get install wrk, brew install wrk)"
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) build .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
