# SPDX-License-Identifier: GPL-2.0
#
# dmabuf-lock: safe dma-buf locking for Rust drivers, as out-of-tree kernel modules.
#
#   make help         lists the targets
#
# The module objects themselves are described in Kbuild.

KDIR ?=
export KDIR

.PHONY: all help modules deps kernel kdir clippy fmtcheck fmt rust-analyzer doc test run bench clean \
	ext ext-clippy ext-run

all: modules

help:
	@echo 'dmabuf-lock targets; CONFIG=perf or CONFIG=sanitize picks another kernel than the test one:'
	@echo '  make                       build the modules into build/ (against $$KDIR, or the test kernel)'
	@echo '  make deps                  install the toolchain (Debian packages, bindgen-cli)'
	@echo '  make kernel                fetch, configure and build the kernel (cached outside the checkout)'
	@echo '  make kdir                  print the kernel build directory the modules are built against'
	@echo '  make run                   boot the test kernel, load every module, tell what they did'
	@echo '  make test [FRESH=1]        everything: deps, kernels, modules, lint, snippets, every test boot'
	@echo '  make bench [WRITE=1]       the Rust paths against the C ones (WRITE=1: into Documentation/)'
	@echo '  make clippy                clippy on every module (warnings are errors)'
	@echo '  make fmtcheck              rustfmt --check with the kernel'"'"'s .rustfmt.toml (make fmt rewrites)'
	@echo '  make rust-analyzer         write rust-project.json for an editor'
	@echo '  make doc                   the library'"'"'s rustdoc HTML into build/doc/ (warnings are errors)'
	@echo '  make ext EXT=DIR           build your own module in DIR against the library (README)'
	@echo '  make ext-clippy EXT=DIR    clippy on your module'
	@echo '  make ext-run EXT=DIR       boot your module with the library core (CMD=... runs after insmod)'
	@echo '  make clean                 remove build/, build-*/, results/ and the test program'"'"'s build'

deps:
	@scripts/deps

kernel: deps
	@scripts/kernel

# The kernel config: CONFIG=perf builds the benchmark kernel (no lockdep) instead of the test one.
ifneq ($(CONFIG),)
export DL_CONFIG := $(CONFIG)
endif

# make test FRESH=1: run the checks that passed with the same inputs again too.
ifneq ($(FRESH),)
export DL_FRESH := $(FRESH)
endif

kdir:
	@scripts/build kdir

modules clippy fmtcheck fmt rust-analyzer doc clean ext ext-clippy:
	@scripts/build $@

ext-run:
	@scripts/ext-run

test:
	@scripts/test

run:
	@scripts/run

bench:
	@scripts/bench
