# Two commands for a fresh machine: `make run` and `make test` (see README).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# `make test` installs and tests every framework backend (extras of pyproject.toml).
EXTRAS ?= test,tensorflow,jax,onnx,transformers
# `make test` runs the suite on this many pytest-xdist workers; tests that share one resource (the
# PostgreSQL server, the SLURM node, the network namespaces, timing bounds) carry an xdist_group
# mark and run on one worker (tests/conftest.py). Tests marked `serial` need the machine to
# themselves (a busy process must be the busiest): they run afterwards, in one process, collected
# from the files that use the mark only (a whole collection costs ~25 s of CPU). Both parts
# run; the exit code is the first part's failure, else the second's. TEST_WORKERS=0: no workers.
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
	status=0; $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not serial" || status=$$?; \
	serial=$$(grep -rl --include='test_*.py' 'pytest.mark.serial' tests); \
	[ -z "$$serial" ] || $(PY) -m pytest -m serial $$serial || { code=$$?; [ $$status -ne 0 ] || status=$$code; }; \
	exit $$status

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
