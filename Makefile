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

# The main job (tools/demo.sh): a local cluster up, a tiny Wan checkpoint, umT5 encoder and VAE,
# a 2-rank Ulysses sampling job from a prompt to an MP4 through the head with a progress bar, its
# outputs, the cluster down.
demo: build
	BUILD=$(BUILD) PYTHON=$(PYTHON) tools/demo.sh

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf $(BUILD)
