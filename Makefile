# make run    install libkmod-dev if missing, build, plan this host with the default profile
# make test   install test tools if missing, build, run the whole suite
# make bench  print benchmark numbers (not part of the pass/fail suite)
SWIFT ?= swift
BIN := .build/debug

# The libkmod wrapper's suites, also run under the address sanitizer.
KMOD_SUITES := KmodContextTests|ModuleTreeTests|UnloadOrderTests

.PHONY: run build test bench deps test-deps module-tree initramfs-lister test-asan clean

run: build
	$(BIN)/cttune plan

deps:
	scripts/install-deps.sh build

test-deps:
	scripts/install-deps.sh test

build: deps
	$(SWIFT) build

# A real Debian cloud kernel's netfilter module tree, depmod'ed, under .cache/module-tree.
module-tree: test-deps
	scripts/module-tree.sh

# Debian's lsinitramfs under .cache/initramfs-tools/bin for the initramfs tests.
initramfs-lister: test-deps
	scripts/initramfs-lister.sh

# The libkmod wrapper under the address sanitizer (use after free, overflows, leaks).
test-asan: module-tree
	LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan-suppressions.txt \
	  $(SWIFT) test --sanitize=address --scratch-path .build-asan --filter '$(KMOD_SUITES)'

test: test-deps build module-tree initramfs-lister test-asan
	$(SWIFT) test

bench: build
	$(SWIFT) build -c release
	scripts/bench.sh

clean:
	rm -rf .build .build-asan
