# Two commands matter on a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel of torch is pinned and installed first: an unpinned resolve pulls a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test models clean browser app

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

demo: install
	$(BIN)/fplnet demo

test: install browser
	$(BIN)/python -m pytest -q

# The web app's browser test (tests/test_app.py) drives Debian's headless Chromium. This installs it
# where apt-get and root are at hand; anywhere else it only says so, and that one test is skipped.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
			|| echo "make browser: apt-get could not install chromium; the browser test will be skipped"; \
	else echo "make browser: no chromium here and no root apt-get to install it; the browser test will be skipped"; fi

app: install
	$(BIN)/fplnet app

models: install
	$(BIN)/fplnet models

clean:
	rm -rf $(VENV) demo_output
