# SPDX-License-Identifier: GPL-2.0
#
# dmabuf-lock: safe dma-buf locking for Rust drivers, as out-of-tree kernel modules.
#
#   make              build the modules (against $(KDIR), or the project's test kernel)
#   make run          boot the test kernel, load the modules, show what they do
#   make test         everything: deps, kernel, modules, lint, every test boot
#
# The module objects themselves are described in Kbuild.

KDIR ?=
export KDIR

.PHONY: all modules deps kernel kdir clippy fmtcheck fmt rust-analyzer test run clean

all: modules

deps:
	@scripts/deps

kernel: deps
	@scripts/kernel

kdir:
	@scripts/build kdir

modules clippy fmtcheck fmt rust-analyzer clean:
	@scripts/build $@

test:
	@scripts/test

run:
	@scripts/run
