# rtmw developer commands. `make install` sets up .venv; everything else uses it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: install test lint typecheck check clean

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	# torch pinned: the CPU wheel; an unpinned torch pulls a multi-GB CUDA build
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet cython numpy
	# xtcocotools' binary wheel breaks beside numpy 2 (dtype size changed): build from source
	$(PIP) install --quiet --no-binary xtcocotools --no-build-isolation "xtcocotools>=1.14"
	$(PIP) install --quiet -e ".[eval,onnx,openvino,ncnn,plot,dev]"
	# type stubs only: its dependency is the real tensorrt, which needs NVIDIA hardware
	$(PIP) install --quiet --no-deps "tensorrt-stubs>=10.13"
	$(PY) -c "import xtcocotools.cocoeval, torch, cv2; print('rtmw installed; torch', torch.__version__)"

test:
	$(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check rtmw tests
	$(VENV)/bin/ruff format --check rtmw tests

# tensorrt-stubs' .pyi files need a py.typed marker and a few syntax mends: see the script
typecheck:
	$(PY) tools/stage_tensorrt_stubs.py
	$(VENV)/bin/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) .typings .mypy_cache .ruff_cache .pytest_cache *.egg-info
