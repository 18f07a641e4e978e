# s3db-async developer commands. Everything runs from a fresh clone with only python3 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint bench demo clean plugin-table

# Installation talks on stderr so `make bench > out.json` stays pure JSON.
$(STAMP): pyproject.toml
	@echo "installing into $(VENV) ..." >&2
	@$(PYTHON) -m venv $(VENV) >&2
	@$(PY) -m pip install -q --upgrade pip >&2
	@$(PY) -m pip install -q -e '.[dev]' >&2
	@touch $(STAMP)

install: $(STAMP)

# Tests run on every core (pytest-xdist; each worker starts its own moto and SeaweedFS).
PYTEST_ARGS ?= -n auto
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check s3db_async plugins tests benchmarks examples
	$(VENV)/bin/ruff format --check s3db_async plugins tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-logo

plugin-table: $(STAMP)
	$(PY) -m s3db_async.plugins.catalog --write-readme

bench: $(STAMP)
	@$(PY) -m benchmarks $(BENCH_ARGS)

demo: $(STAMP)
	$(PY) examples/quickstart.py
	@echo "--- the same data through the CLI ---"
	S3DB_URL=file://./.s3db-demo S3DB_PASSPHRASE=demo-passphrase $(VENV)/bin/s3db resources
	S3DB_URL=file://./.s3db-demo S3DB_PASSPHRASE=demo-passphrase $(VENV)/bin/s3db count customers --by region
	S3DB_URL=file://./.s3db-demo S3DB_PASSPHRASE=demo-passphrase $(VENV)/bin/s3db list orders --limit 3

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .s3db-demo
