# basicsr_denoise: `make demo` (zero-shot denoising of the embedded samples) and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# The tested PyTorch. Pinned here (not in setup.py, which says torch>=2.1) so that pip
# takes the local CPU build instead of the newest release with several GB of CUDA packages.
TORCH_PIN ?= torch==2.13.0
# Shared benchmark data (datasets, bench inputs, reference weights) for tests that use it.
export BASICSR_DENOISE_SHARED ?= $(abspath ../shared)

.PHONY: install demo test bench clean

.installed: setup.py
	$(PIP) install -q $(TORCH_PIN)
	$(PIP) install -q -e '.[test,bench,heif]'
	@touch .installed

install: .installed

demo: .installed
	$(PYTHON) tools/demo.py

test: .installed
	$(PYTHON) -m pytest -q tests

clean:
	rm -rf results/demo .installed
