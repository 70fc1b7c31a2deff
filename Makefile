# The two commands of README.md: `make demo` and `make test`. Both install what is missing
# (tools/install_deps.sh), configure and build first.
VENV    ?= .venv
BUILD   ?= build
PYTHON  := $(abspath $(VENV))/bin/python
JOBS    ?= $(shell nproc)
CTEST_ARGS ?=

.PHONY: all deps configure build test test-gpu demo bench-gpu format clean

all: build

deps:
	VENV=$(VENV) tools/install_deps.sh

$(BUILD)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -G Ninja \
	  -DCMAKE_PREFIX_PATH="$$($(PYTHON) -c 'import torch;print(torch.utils.cmake_prefix_path)')" \
	  -DPython3_EXECUTABLE=$(PYTHON)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# Every test except those that need a GPU (ctest label `gpu`; deploy/gpu/build.sh runs those).
test: build
	cd $(BUILD) && ctest -LE gpu --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# The main job that exists so far: a local cluster up, its status, down; then two processes rendezvous through a store, form a Gloo group
# and exchange a Ulysses-shaped all-to-all and an all-gather, reporting bandwidth.
demo: build
	$(BUILD)/bin/raylightctl --state-dir=$(abspath $(BUILD))/demo-state up --port=6390
	$(BUILD)/bin/raylightctl --state-dir=$(abspath $(BUILD))/demo-state status
	$(BUILD)/bin/raylightctl --state-dir=$(abspath $(BUILD))/demo-state down
	$(BUILD)/bin/comm_bench --backend=gloo --nprocs=2 --sizes_mib=1,16 --iters=5

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf $(BUILD)
