# Two commands do everything on a fresh machine: `make demo` (main job) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-slow demo serve bench clean

install: $(STAMP)

# Re-installs only when the project metadata changes; a no-op otherwise.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,pretrained,scale]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# With 2+ cores the experiment's steps run on worker processes of one torch thread each (--executor local):
# faster than one process using every core for the small networks of the demo (docs/scaling.md measures it).
# DEMO_ARGS= (empty) runs it in one process; the numbers then differ in the last digits (thread count).
DEMO_ARGS ?= $(if $(filter-out 0 1,$(shell nproc 2>/dev/null || echo 1)),--executor local)
demo: $(STAMP)
	$(VENV)/bin/synthaug run configs/quickstart.yaml --out runs/demo $(DEMO_ARGS)

# The web page and API at http://127.0.0.1:8000 on the demo's models (runs/demo), or, when `make demo` has not
# run, on a small cgan and small-cnn trained first into runs/serve (a few CPU minutes, once). More flags:
# make serve SERVE_ARGS="--port 8080 --token ..."
serve: $(STAMP)
	$(PY) -m synthaug.serve.demo --demo runs/demo --out runs/serve --runs-root runs -- $(SERVE_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) runs
