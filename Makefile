# Two commands for a fresh machine: `make run` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# `make test` installs and tests every framework backend (extras of pyproject.toml).
EXTRAS ?= test,tensorflow,jax,onnx,transformers
# `make test` runs the suite on this many pytest-xdist workers; tests that share one resource (the
# PostgreSQL server, the SLURM node, the network namespaces, timing bounds) carry an xdist_group
# mark and run on one worker (tests/conftest.py). TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

.PHONY: run test venv clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/nnscale run

test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
