# make run    install libkmod-dev if missing, build, plan this host with the default profile
# make test   install test tools if missing, build, run the whole suite
# make bench  print benchmark numbers (not part of the pass/fail suite)
SWIFT ?= swift
BIN := .build/debug

.PHONY: run build test bench deps test-deps test-python clean

run: build
	$(BIN)/cttune plan

deps:
	scripts/install-deps.sh build

test-deps:
	scripts/install-deps.sh test

test-python: test-deps
	scripts/test-python.sh

build: deps
	$(SWIFT) build

test: test-deps test-python build
	$(SWIFT) test

bench: build
	$(SWIFT) build -c release
	scripts/bench.sh

clean:
	rm -rf .build
