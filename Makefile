# rtmw developer commands. `make install` sets up .venv; everything else uses it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

# policy-search: every INT8 target's policy on the demo model; make demo exports with them
.PHONY: rknn-toolchain arm-lane arm-lane-ci policy-shapes policy-search install test test-servers test-capped test-base-install lint typecheck check clean demo demo-full demo-3d gate-demo bench-baseline
# what `make install` leaves behind: the README's commands install first when it is missing
# or older than pyproject.toml, so that each works alone on a fresh clone
STAMP  := $(VENV)/.rtmw-installed

# The capped-ISA lane: the precision-sensitive tests again with the CPU held to AVX2, so that
# an AVX-512/bf16 machine also exercises the AVX2 class. oneDNN (OpenVINO, torch) and ATen
# honour these; onnxruntime (MLAS) and ncnn dispatch on CPUID and cannot be capped. MNN
# (CPUID too), QNN (onnxruntime's kernels, the HTP emulator) and RKNN (the NPU simulator) are
# left out: the cap reaches none of them, so the lane would only repeat the main run.
ISA_CAP := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2

$(PY):
	$(PYTHON) -m venv $(VENV)

install: $(PY)
	@rm -f $(STAMP)
	# torch pinned: the CPU wheel; an unpinned torch pulls a multi-GB CUDA build
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet cython numpy
	# xtcocotools' binary wheel breaks beside numpy 2 (dtype size changed): build from source
	$(PIP) install --quiet --no-binary xtcocotools --no-build-isolation "xtcocotools>=1.14"
	$(PIP) install --quiet -e ".[eval,onnx,openvino,ncnn,mnn,qnn,litert,executorch,ray,plot,video,dev]"
	# type stubs only: its dependency is the real tensorrt, which needs NVIDIA hardware
	$(PIP) install --quiet --no-deps "tensorrt-stubs>=10.13"
	$(PY) -c "import xtcocotools.cocoeval, torch, cv2; print('rtmw installed; torch', torch.__version__)"
	$(MAKE) --no-print-directory rknn-toolchain
	@touch $(STAMP)

$(STAMP): pyproject.toml
	$(MAKE) --no-print-directory install

# The README's test command: installs first when needed, then the servers and the browser
# the remote and report tests start (where this user may install them; else they skip,
# naming what is missing), then the suite
test: $(STAMP)
	@$(MAKE) --no-print-directory test-servers || echo "note: the SSH and HTML-report tests will skip: run 'sudo make test-servers' (OpenSSH's server, headless Chromium)"
	$(PY) -m pytest -q

# The remote tests start a real sshd on 127.0.0.1 (and Ray, from the ray extra); the HTML
# report test opens index.html in headless Chromium. This installs Debian's OpenSSH server
# and chromium-headless-shell where they are missing (root, or sudo without a password)
SERVER_PACKAGES := openssh-server openssh-client chromium-headless-shell
test-servers:
	@missing=""; \
	{ command -v sshd >/dev/null 2>&1 || test -x /usr/sbin/sshd; } || missing="$$missing openssh-server openssh-client"; \
	command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 || missing="$$missing chromium-headless-shell"; \
	if test -z "$$missing"; then echo "test servers: sshd and headless Chromium present"; exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then echo "missing:$$missing (no apt-get: install them by hand)"; exit 1; fi; \
	if test "$$(id -u)" = 0; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO=sudo; \
	else echo "missing:$$missing (needs root: sudo make test-servers)"; exit 1; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get install -y -q $$missing >/dev/null 2>&1 || \
	{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $$missing >/dev/null; } || exit 1; \
	echo "test servers: installed$$missing"

# rtmw-l-384x288 adds nothing to precision over rtmw-m: the lane leaves it out. On a host
# without AVX-512 the cap changes nothing (the main run already was the AVX2 class), so the
# lane says so and does not repeat those tests
test-capped:
	@if grep -q -w -E 'avx512f' /proc/cpuinfo; then \
		echo "$(ISA_CAP) pytest -m precision"; \
		$(ISA_CAP) $(PY) -m pytest -q -m precision -k "not 384x288 and not mnn and not qnn and not rknn"; \
	else echo "capped-ISA lane: this host has no AVX-512; the main run was already the AVX2 class (nothing to cap)"; fi

# The base install (no extras) in a venv of its own: every backend's target says which
# extra it needs, in one line with exit 3 (tools/check_base_install.py)
BASE_VENV ?= .venv-base
test-base-install:
	rm -rf $(BASE_VENV) && $(PYTHON) -m venv $(BASE_VENV)
	$(BASE_VENV)/bin/pip install --quiet "torch==2.13.0"
	$(BASE_VENV)/bin/pip install --quiet -e .
	$(BASE_VENV)/bin/python tools/check_base_install.py

# The README's first command: installs when needed, then the product on the demo model:
# the quick representative set (FP32, each x86 runtime's INT8, ncnn FP16, bf16 where
# native), gated, results/demo/index.html
demo: $(STAMP)
	$(VENV)/bin/rtmw-demo --out results/demo

# every target (18), LiteRT and ExecuTorch included
demo-full: $(STAMP)
	$(VENV)/bin/rtmw-demo --all --out results/demo-full

# The same for RTMW3D: the 3D demo model on synthetic 3D figures, MPJPE per part, 3D gate
demo-3d: $(STAMP)
	$(VENV)/bin/rtmw-demo --3d --all --out results/demo-3d

# The committed CPU baseline: rtmw-m-256x192, rtmw-l-256x192 and rtmw-l-384x288 (random
# weights, exported latency-only) on every CPU target this machine runs, INT8 and bf16
# included, batch 1 and 8, 2 threads for every runtime, with streaming; results/cpu-<model>/
# and the comparison results/cpu-published/ (routes_across_models.png)
bench-baseline:
	$(VENV)/bin/rtmw-bench baseline --out results --threads 2

# What CI gates: FP16 and ort-int8 artifacts of the demo model against its FP32, synthetic
# data, budgets in .ci/gates-demo.toml (why they differ from the defaults is written there)
gate-demo:
	$(VENV)/bin/python -c "from rtmw.data.synthetic import make_dataset as m; m('results/_scratch/gate-data', 100, 303, split='val', progress=False); m('results/_scratch/gate-data', 60, 304, split='train', progress=False)"
	$(VENV)/bin/rtmw-calib --images results/_scratch/gate-data/images/train --ann results/_scratch/gate-data/annotations/coco_wholebody_train_v1.0.json --n 96 --out results/_scratch/gate-calib.npz --quiet
	$(VENV)/bin/rtmw-bench gate $$($(PY) -c "from rtmw.models import demo_checkpoint as d; print(d())") --targets onnx-fp16,ort-int8,litert-int8 --int8-policy head-fp32 --budgets .ci/gates-demo.toml --calib results/_scratch/gate-calib.npz --images results/_scratch/gate-data/images/val --ann results/_scratch/gate-data/annotations/coco_wholebody_val_v1.0.json --out results/_scratch/gate --junit results/_scratch/gate.junit.xml

# the layering (pyproject's [tool.importlinter]): layers, leaves, backends, no cycles
lint:
	$(VENV)/bin/ruff check rtmw tests tools
	$(VENV)/bin/ruff format --check rtmw tests tools
	$(VENV)/bin/lint-imports

# tensorrt-stubs' .pyi files need a py.typed marker and a few syntax mends: see the script
typecheck:
	$(PY) tools/stage_tensorrt_stubs.py
	$(VENV)/bin/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) $(RKNN_VENV) .typings .mypy_cache .ruff_cache .pytest_cache *.egg-info

# Each INT8 target's fastest policy within every part's budget on the demo model (~30 min);
# the chosen policies become the ones `make demo` exports with (tied to the checkpoint hash)
policy-search: $(STAMP)
	$(VENV)/bin/rtmw-demo --search-int8 --val-images 160 --out results/policy-search
	cp results/policy-search/chosen.json rtmw/workflows/demo_int8_policies.json

# rknn-toolkit2 (Rockchip's RKNN converter and simulator) pins torch <= 2.4, numpy <= 1.26.4,
# onnx <= 1.18 and protobuf <= 4.25.4: it gets an environment of its own, which the rknn-*
# targets drive through rtmw/runtimes/rknn_worker.py. torch 2.13.0 (the CPU wheel) stands in
# for its torch pin: the toolkit imports torch but converts ONNX without it.
RKNN_VENV ?= .venv-rknn
rknn-toolchain:
	@test -x $(RKNN_VENV)/bin/python || $(PYTHON) -m venv $(RKNN_VENV)
	$(RKNN_VENV)/bin/pip install --quiet --no-deps "rknn-toolkit2==2.5.0" "torch==2.13.0"
	$(RKNN_VENV)/bin/pip install --quiet "numpy==1.26.4" "onnx==1.18.0" "protobuf==4.25.4" \
		"onnxruntime==1.22.1" scipy psutil ruamel.yaml tqdm opencv-python-headless \
		fast-histogram "setuptools<80.1" typing_extensions sympy networkx jinja2 filelock fsspec
	$(RKNN_VENV)/bin/python -c "from rknn.api import RKNN; print('rknn-toolkit2 ready')"

# The aarch64 lane (docs/usage.md, "Phones and boards"): the demo model's artifacts verified,
# benched and gated on x86, on an emulated ARMv8.0 Cortex-A53 and on an emulated ARMv9
# Cortex-A710 (qemu-user), verdicts side by side in results/arm-lane. Needs root once
# (tools/arm_lane.sh setup: qemu-user, binfmt, an arm64 Python in $(ARM_ROOT)).
ARM_ROOT ?= .arm
ARM_LANE ?= results/_scratch/arm-lane
ARM_CORES ?= armv8.0-a53:cortex-a53 armv9-a710:cortex-a710
ARM_TARGETS ?=
ARM_IMAGES ?=
arm-lane: $(STAMP)
	$$(test "$$(id -u)" = 0 || echo sudo -n -E) tools/arm_lane.sh setup $(ARM_ROOT)
	$(VENV)/bin/rtmw-bench arm-lane prepare $(ARM_LANE) $(if $(ARM_IMAGES),--images $(ARM_IMAGES)) $(if $(ARM_TARGETS),--targets $(ARM_TARGETS))
	$(VENV)/bin/rtmw-bench arm-lane run $(ARM_LANE) --label x86
	@for core in $(ARM_CORES); do \
		label=$${core%%:*}; cpu=$${core##*:}; \
		echo "== $$label (qemu-user, QEMU_CPU=$$cpu)"; \
		QEMU_CPU=$$cpu tools/arm_lane.sh python $(ARM_ROOT) -m rtmw.cli.bench arm-lane run \
			$(ARM_LANE) --label $$label || exit 1; \
	done
	$(VENV)/bin/rtmw-bench arm-lane report $(ARM_LANE) $(foreach core,$(ARM_CORES),--label $(firstword $(subst :, ,$(core)))) --out $(ARM_REPORT)
ARM_REPORT ?= results/arm-lane

# The lane's precision-sensitive subset, run by .ci/run: the FP32 reference, the two FP16
# routes that compute in f16 on a phone core (onnxruntime, ncnn) and the INT8 route whose
# kernels change with the ISA (dot product, i8mm), on the phone-class core only, over 6
# held-out images. Its budget, setup included: 12 min (results/arm-lane/ci-subset has the
# measured time); over it, it says so (a slow machine is not a failed verdict). It fails when
# a verdict on ARM differs from x86's and nothing recorded explains it.
ARM_CI_TARGETS := onnx,onnx-fp16,ncnn-fp16,ort-int8
ARM_CI_BUDGET_MIN := 12
arm-lane-ci:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory arm-lane ARM_CORES=armv9-a710:cortex-a710 ARM_IMAGES=6 \
		ARM_TARGETS=$(ARM_CI_TARGETS) ARM_LANE=results/_scratch/arm-lane-ci \
		ARM_REPORT=results/_scratch/arm-lane-ci || exit 1; \
	took=$$(( $$(date +%s) - start )); \
	echo "arm-lane-ci: $$((took / 60)) min $$((took % 60)) s of its $(ARM_CI_BUDGET_MIN)-min budget"; \
	if [ $$took -gt $$(( $(ARM_CI_BUDGET_MIN) * 60 )) ]; then \
		echo "warning: arm-lane-ci ran over its $(ARM_CI_BUDGET_MIN)-min budget" >&2; fi

# Each INT8 target's searched policy shape (rtmw/workflows/demo_int8_policies.json) against
# head-fp32 on the published configurations, random init, latency only
policy-shapes: $(STAMP)
	$(VENV)/bin/rtmw-bench policy-shapes --models rtmw-m-256x192,rtmw-l-256x192 --out results/policy-shapes
