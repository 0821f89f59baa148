# make run        install libkmod-dev, libmnl-dev and libnftables-dev if missing, build (an import of an undeclared target fails), plan this host with the default profile
# make test       lint, install test tools if missing, build, run the whole suite
# make lint       check the code layout with swift format (fix with: swift format -i -r Sources Tests)
# make bench      print benchmark numbers (not part of the pass/fail suite)
# make install    release build, man page and completions, installed under $(DESTDIR)$(PREFIX)
# make uninstall  remove what make install put there (same PREFIX and DESTDIR)
# make deb        build .build/fleet/cttune_VERSION_ARCH.deb from debian/ with dpkg-buildpackage
SWIFT ?= swift
BIN := .build/debug

# Installation layout. The binary finds its profiles at BINDIR/../share/cttune/profiles,
# so move BINDIR and DATADIR together (PREFIX does).
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
PROFILEDIR ?= $(DATADIR)/cttune/profiles
UNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
# The directory holding the cttune binary that install-files copies.
INSTALL_FROM ?= .build/release

GENERATED := .build/fleet
MANPAGE := $(GENERATED)/cttune.1
UNITS := cttune-apply.service cttune-status.service cttune-status.timer

# The libkmod wrapper's suites, also run under the address sanitizer.
KMOD_SUITES := KmodContextTests|ModuleTreeTests|UnloadOrderTests

.PHONY: run build lint test bench deps test-deps test-python fleet-test-deps module-tree initramfs-lister test-asan clean release man install install-files uninstall deb

run: build
	$(BIN)/cttune plan

deps:
	scripts/install-deps.sh build

test-deps:
	scripts/install-deps.sh test

test-python: test-deps
	scripts/test-python.sh

build: deps
	$(SWIFT) build --explicit-target-dependency-import-check error

# The fleet tests inspect the Debian package and the man page, install the
# package into a minimal Debian root (built once, cached in .cache/debian-minbase),
# and drive ansible-playbook.
fleet-test-deps: test-deps deb
	scripts/setup-ansible-venv.sh
	scripts/debian-minbase.sh $$(ls $(GENERATED)/cttune_*.deb | tail -n 1) >/dev/null


# A real Debian cloud kernel's netfilter module tree, depmod'ed, under .cache/module-tree.
module-tree: test-deps
	scripts/module-tree.sh

# Debian's lsinitramfs under .cache/initramfs-tools/bin for the initramfs tests.
initramfs-lister: test-deps
	scripts/initramfs-lister.sh

# The libkmod wrapper under the address sanitizer (use after free, overflows, leaks).
test-asan: module-tree
	LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/lsan-suppressions.txt \
	  scripts/test-watchdog.sh 900 $(SWIFT) test --sanitize=address --scratch-path .build-asan --filter '$(KMOD_SUITES)'


# The formatter in lint mode: layout and the few rules .swift-format enables.
lint:
	$(SWIFT) format lint --recursive --strict --parallel Package.swift Plugins Sources Tests
	@awk 'length > 140 { print FILENAME ":" FNR ": longer than 140 columns"; bad = 1 } END { exit bad }' \
		$$(git ls-files 'Sources/*.swift')

# The suite takes about 7 minutes here; past 25 the watchdog names the tests
# still running, shows their processes and stacks, and fails the run.
test: lint test-deps test-python build module-tree initramfs-lister test-asan fleet-test-deps
	scripts/test-watchdog.sh 1500 $(SWIFT) test

bench: build
	$(SWIFT) build -c release --product cttune
	scripts/bench.sh

# Static Swift runtime: the installed binary needs only libc, libstdc++, libkmod, libmnl and libnftables.
# No $ORIGIN rpath: nothing is loaded from beside the binary. -z now: every
# symbol is bound at start, so the relocation tables can be read-only (full
# RELRO) for a tool that runs as root.
release: deps
	$(SWIFT) build -c release --static-swift-stdlib --disable-local-rpath --product cttune -Xlinker -z -Xlinker now

# The man page, from the argument-parser definitions (swift-argument-parser's
# generate-manual plugin; the debug build is enough to read them).
man: deps
	$(SWIFT) package plugin generate-manual --configuration debug --section 1 --authors "the cttune authors"
	mkdir -p $(GENERATED)
	cp .build/plugins/GenerateManual/outputs/cttune/cttune.1 $(MANPAGE)

$(MANPAGE):
	$(MAKE) man

install: release man
	$(MAKE) install-files

# Installs an already built binary and man page: no build step, so it can run
# while another build holds the package lock. The bash completion is sourced,
# not run: no #! line.
install-files: $(MANPAGE)
	install -D -m 0755 $(INSTALL_FROM)/cttune $(DESTDIR)$(BINDIR)/cttune
	install -d $(DESTDIR)$(PROFILEDIR)
	install -m 0644 profiles/*.yaml $(DESTDIR)$(PROFILEDIR)/
	install -D -m 0644 $(MANPAGE) $(DESTDIR)$(MANDIR)/man1/cttune.1
	install -d $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) $(DESTDIR)$(UNITDIR)
	$(INSTALL_FROM)/cttune --generate-completion-script bash | sed '1{/^#!/d}' > $(DESTDIR)$(BASHCOMPDIR)/cttune
	$(INSTALL_FROM)/cttune --generate-completion-script zsh > $(DESTDIR)$(ZSHCOMPDIR)/_cttune
	$(INSTALL_FROM)/cttune --generate-completion-script fish > $(DESTDIR)$(FISHCOMPDIR)/cttune.fish
	chmod 0644 $(DESTDIR)$(BASHCOMPDIR)/cttune $(DESTDIR)$(ZSHCOMPDIR)/_cttune $(DESTDIR)$(FISHCOMPDIR)/cttune.fish
	for unit in $(UNITS); do \
	  sed 's|@BINDIR@|$(BINDIR)|g' contrib/systemd/$$unit > $(DESTDIR)$(UNITDIR)/$$unit && chmod 0644 $(DESTDIR)$(UNITDIR)/$$unit; \
	done
	install -D -m 0644 contrib/systemd/cttune.tmpfiles $(DESTDIR)$(TMPFILESDIR)/cttune.conf

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cttune $(DESTDIR)$(MANDIR)/man1/cttune.1
	rm -f $(DESTDIR)$(BASHCOMPDIR)/cttune $(DESTDIR)$(ZSHCOMPDIR)/_cttune $(DESTDIR)$(FISHCOMPDIR)/cttune.fish
	for unit in $(UNITS); do rm -f $(DESTDIR)$(UNITDIR)/$$unit; done
	rm -f $(DESTDIR)$(TMPFILESDIR)/cttune.conf
	for profile in profiles/*.yaml; do rm -f $(DESTDIR)$(PROFILEDIR)/$$(basename $$profile); done
	-rmdir $(DESTDIR)$(PROFILEDIR) $(DESTDIR)$(DATADIR)/cttune 2>/dev/null

# debian/rules builds the release binary and the man page (make release man).
deb: deps
	scripts/install-deps.sh package
	scripts/build-deb.sh $(GENERATED)

clean:
	rm -rf .build .build-asan
