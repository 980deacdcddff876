# The two commands a user needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install lint test test-reliability demo airflow cluster compose-check clean

install: $(STAMP)

# pip itself (its pin in requirements-dev.txt), the pinned set (requirements-dev.txt: what
# runs, plus tests and tools), then this project's package (editable: the Airflow provider
# entry point and `python -m zuora.cli` work, and edits to plugins/zuora/ take effect without
# reinstalling). The build's egg-info is removed from plugins/: Airflow puts that folder on
# sys.path, where a second copy of the metadata registers the airflow.plugins entry point
# twice ("already registered"). After a manual `pip install -e .`, remove it the same way.
$(STAMP): requirements.txt requirements-dev.txt requirements-lock.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "$$(grep '^pip==' requirements-dev.txt)"
	$(PY) -m pip install --quiet --disable-pip-version-check \
		-r requirements-dev.txt -c requirements-lock.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -rf plugins/*.egg-info
	touch $(STAMP)

# Lint, format and type checks (configured in pyproject.toml); `make test` runs them first.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest

# Only the fault-injection suite (also part of `make test`).
test-reliability: $(STAMP)
	$(PY) -m pytest tests/reliability

demo: $(STAMP)
	$(PY) -m devstack.demo

airflow: $(STAMP)
	$(PY) -m devstack.demo --standalone

# The docker-compose topology as local processes (Celery, 2 workers); Ctrl-C stops it.
cluster: $(STAMP)
	$(PY) -m devstack.cluster

# docker-compose.yaml run as a user runs it (opt-in, not part of `make test` or CI): needs a
# running Docker engine (and debootstrap where images must be stood in for); about 20 minutes
# on 2 cores with nothing cached (18 measured), more on a busy machine. PASS/FAIL per check;
# leaves nothing behind. See docs/installing.md ("What was run"). ARGS=--keep-images keeps the
# images for the next run.
compose-check:
	python3 compose-check/check.py $(ARGS)

clean:
	rm -rf $(VENV) .demo .cluster .pytest_cache
