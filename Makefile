# thermal-hf developer targets. Every target works on a fresh clone: test and demo install first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-fast demo bench lint clean

install: $(STAMP)

# Re-install only when the dependency files change. The constraints pin torch/torchvision to builds
# that import together (the CPU-only torch 2.13.0 cannot import torchvision).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing thermal-hf and its pinned dependencies into $(VENV) (torch's CUDA build, which also runs on"
	@echo "the CPU: about 6 GB; a few minutes from a local mirror, longer from PyPI)"
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider tests

# Everything but the multi-process / end-to-end tests (a quick loop while developing).
test-fast: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -p no:cacheprovider -m "not slow" tests

demo: install
	HF_HUB_OFFLINE=1 $(PY) -m thermal_hf.train recipes/demo.yaml

bench: install
	$(PY) bench/run_all.py

lint: install
	$(BIN)/ruff check thermal_hf tests bench compat

clean:
	rm -rf $(VENV) outputs data/synthetic data/converted .pytest_cache
