# The two quick-start commands (see README.md), plus the fast developer loop.
#   make demo   - same as ./quickstart demo (set everything up, run the demo)
#   make test   - same as ./quickstart test (set everything up, run every test)
#   make dev    - incremental developer build: persistent build dir, LTO off, extension built in place
#   make check  - ruff + the C++ tests (no Python)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BUILD ?= build/dev
BUILD_TYPE ?= Release

.PHONY: demo test dev check sysdeps venv clean asan

sysdeps:
	@bash .ci/sysdeps.sh

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

venv: $(PY)

demo:
	./quickstart demo

test:
	./quickstart test

# Developer loop: a persistent CMake/Ninja build in $(BUILD); the module is copied next to the Python
# sources, so `PYTHONPATH=python` (or the .pth that `make dev` writes into the venv) picks it up.
dev: sysdeps venv
	$(PY) -m pip install -q numpy pybind11 ninja cmake pytest pytest-benchmark hypothesis tqdm ruff
	$(PY) -m pip uninstall -q -y recallcore 2>/dev/null || true
	$(VENV)/bin/cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DRECALLCORE_LTO=OFF \
	  -DRECALLCORE_CPP_TESTS=ON -DPython_EXECUTABLE=$(abspath $(PY))
	$(VENV)/bin/cmake --build $(BUILD)
	cp -f $(BUILD)/_core*.so python/recallcore/
	echo "$(abspath python)" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/recallcore-dev.pth

check: dev
	$(VENV)/bin/ruff check python tests benchmarks
	$(BUILD)/recallcore_cpp_tests

# ASan + UBSan build of the extension, then the test suite under it.
asan: sysdeps venv
	$(VENV)/bin/cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRECALLCORE_SANITIZE=ON \
	  -DRECALLCORE_CPP_TESTS=ON -DPython_EXECUTABLE=$(abspath $(PY))
	$(VENV)/bin/cmake --build build/asan
	build/asan/recallcore_cpp_tests
	mkdir -p build/asan/pkg && rm -rf build/asan/pkg/recallcore && cp -r python/recallcore build/asan/pkg/ \
	  && rm -f build/asan/pkg/recallcore/_core*.so && cp build/asan/_core*.so build/asan/pkg/recallcore/
	ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  PYTHONPATH=build/asan/pkg $(PY) -m pytest -q -x -p no:cacheprovider tests

clean:
	rm -rf build $(VENV)
