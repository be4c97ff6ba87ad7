# Environment, demo and tests. `make demo` and `make test` create .venv on first use (about 2-5 minutes,
# 5.5 GB: torch 2.14.1 + torchvision 0.29.1 as a pair) and reuse it afterwards; the venv is rebuilt only
# when requirements.txt changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
DEMO_DIR ?= outputs/demo
export PYOPENGL_PLATFORM ?= egl

.PHONY: venv demo test bench clean-demo detector-venv

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) demo.py --out $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(PY) -m benchmarks.$$(basename $$script .py) || exit 1; done

# predict.py --detector: MediaPipe pins numpy<2 / protobuf<5, so it gets its own small environment.
detector-venv:
	test -x .venv-detector/bin/python || $(PYTHON) -m venv .venv-detector
	.venv-detector/bin/pip install --quiet mediapipe==0.10.21

clean-demo:
	rm -rf $(DEMO_DIR)
