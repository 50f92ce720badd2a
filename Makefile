# Two entry points: `make demo` and `make test`. Each creates or reuses .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The pinned CPU wheel first, so no dependency can pull a CUDA build of torch.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Sleeping (not spinning) OpenMP threads: on a busy 2-core machine spinning makes small tensor work 5-10x slower.
export OMP_WAIT_POLICY ?= PASSIVE
export HF_HUB_OFFLINE ?= 1

demo: $(STAMP)
	$(VENV)/bin/scorehoi demo --out outputs/demo --overwrite

# One worker per CPU core (pytest-xdist); a test file stays on one worker, so its module fixtures are built once.
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile tests

# Ruff (configured in ruff.toml: line length 119, pyflakes, import order, bugbear, one type-hint style).
lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) outputs
