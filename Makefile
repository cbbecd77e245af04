# irqd -- the two set-up commands are `make run` and `make test`; both
# bootstrap .venv and build the C core first.  Other targets: see `make help`.

PYTHON    ?= python3
VENV      := .venv
VPY       := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
CORE_DEPS := $(wildcard irqd/core/*.c irqd/core/*.h include/irqd/*.h) irqd/_build.py
CORE_SO   := irqd/.core-built
# Debian packages the tests need (installed once, as root, when missing):
# clang + compiler-rt for sanitizers and libFuzzer, systemd for
# systemd-analyze / systemd-socket-activate.
SYS_PKGS  := clang libclang-rt-14-dev llvm systemd
SOCKET    ?= $(if $(XDG_RUNTIME_DIR),$(XDG_RUNTIME_DIR)/irqd.sock,$(CURDIR)/run/irqd.sock)
PYTEST_ARGS ?=

.PHONY: help venv build sysdeps run test c-test fuzz bench demo lint tsan install clean

help:
	@echo "make run     bootstrap .venv, build, start irqd on $(SOCKET)"
	@echo "make test    bootstrap, build, run every test (Python and C)"
	@echo "make bench   benchmarks against KVM and the raw socket floor"
	@echo "make demo    simulated VM with a live migration between two daemons"
	@echo "make fuzz    run the fuzzers longer (FUZZ_SECONDS=300)"
	@echo "make install install the package and systemd units (DESTDIR, PREFIX)"

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test]'
	rm -f irqd/_core.abi3.so  # pip's editable build; `make build` owns the module
	touch $@

venv: $(STAMP)

$(CORE_SO): $(STAMP) $(CORE_DEPS)
	flock build.lock $(VPY) irqd/_build.py
	touch $@

build: $(CORE_SO)

sysdeps:
	@missing=""; \
	command -v clang >/dev/null || missing="$(SYS_PKGS)"; \
	ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || missing="$(SYS_PKGS)"; \
	command -v systemd-analyze >/dev/null || missing="$(SYS_PKGS)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

run: build
	@mkdir -p $(dir $(SOCKET))
	@echo "irqd: serving on $(SOCKET)  (connect: IRQD_SOCKET=$(SOCKET) $(VENV)/bin/irqctl hello)"
	$(VPY) -m irqd --socket $(SOCKET)

test: build sysdeps
	$(VPY) -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(VPY) -m pip install -q ruff
	$(VENV)/bin/ruff check irqd tests

clean:
	rm -rf build irqd/_core*.so $(CORE_SO) tests/c/build fuzz/build

-include mk/*.mk
