# The two commands of the quick start. Both create .venv and install what they need first.
VENV   := .venv
PYTHON := $(VENV)/bin/python
CLDX   := $(VENV)/bin/cldx
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: demo test setup docs standard-docs bench bench-reports bench-concurrency clean screenshots

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# The machine's own pip is old; upgrade it inside the venv before installing.
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	# pycanon (the k-anonymity cross-check in tests) pins old numpy/pandas/scipy exactly; it runs on
	# ours, so it is installed without its pins.
	$(PYTHON) -m pip install --quiet --no-deps pycanon==1.3.6
	touch $@

setup: $(VENV)/.installed

# The demo's data ends with submissions received in August 2018: served as of the day after, so
# what is due and what is missing read as they would have then (CLDX_TODAY; see the README).
DEMO_TODAY ?= 2018-08-30

demo: setup
	$(CLDX) init
	$(CLDX) demo
	CLDX_TODAY=$(DEMO_TODAY) $(CLDX) serve --host $(HOST) --port $(PORT)

# One worker per core, at most four (pytest-xdist); each test file runs whole on one worker, so its
# module fixtures are made once. Session fixtures (the evidence store) are made once per worker.
test: setup
	$(PYTHON) -m pytest --numprocesses=auto --maxprocesses=4 --dist loadfile

# Regenerate the docs made from code (the data standard and the rule catalogue).
docs standard-docs: setup
	$(CLDX) standard docs
	$(CLDX) rules docs

clean:
	rm -rf $(VENV) cldx.egg-info .pytest_cache

# Ingest benchmark (benchmarks/ingest.py): cldx against frictionless, pandas + ORM and a raw insert,
# on SQLite and PostgreSQL. Several minutes; `make bench BENCH_ARGS=--quick` for a smoke run.
bench: setup
	@$(PYTHON) -c "import frictionless, pandas" 2>/dev/null || $(PYTHON) -m pip install --quiet -e '.[dev,bench]'
	$(PYTHON) -m benchmarks.ingest $(BENCH_ARGS)

# Report benchmark (benchmarks/reports.py): reach by three dimensions at 1,000,000 clients on SQLite
# and PostgreSQL, disclosure control included, beside a bare DuckDB GROUP BY. `BENCH_ARGS=--quick` for a smoke run.
bench-reports: setup
	$(PYTHON) -m benchmarks.reports $(BENCH_ARGS)

# Concurrency benchmark (benchmarks/concurrency.py): 20 provider systems posting JSON batches of 1,000
# records at once to uvicorn (4 workers on PostgreSQL, 1 on SQLite) for 30 s, the store checked after,
# beside submit() run serially. About 3 minutes; `BENCH_ARGS=--quick` for a smoke run (under a minute).
bench-concurrency: setup
	$(PYTHON) -m benchmarks.concurrency $(BENCH_ARGS)

# The README's screenshots (docs/screenshots/): a small demo store served and drawn in headless Chromium.
# `make screenshots SCREENSHOT_ARGS="--store DIR"` reuses a folder where `cldx init` and `cldx demo` ran.
screenshots: setup
	$(PYTHON) scripts/screenshots.py $(SCREENSHOT_ARGS)
