# Two commands for a fresh machine: `make book` and `make test` (and `make lab` to run a chapter interactively).
# Each bootstraps .venv from pyproject.toml on first use (and again when it changes).

PYTHON ?= python3
VENV ?= .venv
PROFILE ?= cpu
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test smoke lab venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fetal .venv)" >/dev/null
	@touch $@

## Build the book: every chapter on real data where present (FETAL_DATA_DIR or ./data), phantoms elsewhere.
book: $(STAMP)
	$(BIN)/fetal book --profile $(PROFILE) $(if $(DATA_DIR),--data-dir $(DATA_DIR),)
	@echo "Open book/_build/html/index.html"

## Whole book on phantoms in minutes.
smoke: $(STAMP)
	$(BIN)/fetal book --profile smoke

## JupyterLab on 127.0.0.1 (PORT, default 8888): notebooks/*.py open as notebooks (jupytext); DATA_DIR -> the kernels' data root.
lab: $(STAMP)
	$(BIN)/fetal lab $(if $(PORT),--port $(PORT),) $(if $(DATA_DIR),--data-dir $(DATA_DIR),)

## Run the test suite (real-data tests read FETAL_DATA_DIR; they fail if it is set and data is missing),
## then the Keras code that must run on every backend (and the Keras smoke chapters) again on Keras's PyTorch backend.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	KERAS_BACKEND=torch FETAL_WITHOUT_TENSORFLOW=1 $(BIN)/python -m pytest -m keras_backends $(PYTEST_ARGS)

clean:
	rm -rf build book/_build book/chapters book/generated
