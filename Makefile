# Two commands for people: `make run` and `make test`. Both install what they need into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run demo test screenshots bench install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11 or newer is needed (found %s)" % sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m launch.devserver

demo: $(STAMP)
	$(PY) -m launch.demo

test: $(STAMP)
	$(PY) -m pytest

# The README's pictures of the main screens (docs/screenshots/), taken by the browser test that visits every screen.
screenshots: $(STAMP)
	README_SCREENSHOTS=1 $(PY) -m pytest tests/browser/test_screens_browser.py -q

bench: $(STAMP)
	$(PY) bench/history_bench.py
	$(PY) bench/intake_bench.py
	$(PY) bench/worker_bench.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
