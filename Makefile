# SPDX-License-Identifier: GPL-2.0
#
# dmabuf-lock: safe dma-buf locking for Rust drivers, as out-of-tree kernel modules.
#
#   make              build the modules (against $(KDIR), or the project's test kernel)
#   make run          boot the test kernel, load the modules, show what they do
#   make test         everything: deps, kernel, modules, lint, every test boot
#   make bench        the Rust paths against the C paths, on the perf and test kernels
#
# The module objects themselves are described in Kbuild.

KDIR ?=
export KDIR

.PHONY: all modules deps kernel kdir clippy fmtcheck fmt rust-analyzer test run bench clean

all: modules

deps:
	@scripts/deps

kernel: deps
	@scripts/kernel

# The kernel config: CONFIG=perf builds the benchmark kernel (no lockdep) instead of the test one.
ifneq ($(CONFIG),)
export DL_CONFIG := $(CONFIG)
endif

kdir:
	@scripts/build kdir

modules clippy fmtcheck fmt rust-analyzer clean:
	@scripts/build $@

test:
	@scripts/test

run:
	@scripts/run

bench:
	@scripts/bench
