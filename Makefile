# cmdhost - one non-recursive build.
#
#   make              build/cmdhostd, build/cmdhost, build/plugins/*.so
#   make run          install deps if missing, build, run the daemon
#   make test         install deps if missing, build, run every test
#   make test SANITIZE=1   the same under ASan+UBSan, in build/asan/
#   make install      PREFIX (default /usr/local) and DESTDIR honoured;
#                     installs what is built in $(B), see "install" below
#   make uninstall    removes what install put there
#
#   make deb          the Debian packages in build/deb/ (scripts/deb.sh)
#
# CC, CXX, CPPFLAGS, CFLAGS, CXXFLAGS, LDFLAGS, PREFIX and DESTDIR may be
# overridden.

CC       ?= cc
CXX      ?= c++
PKG_CONFIG ?= pkg-config
CFLAGS   ?= -O2 -g
CXXFLAGS ?= -O2 -g
LDFLAGS  ?=
# dpkg-buildflags' -D_FORTIFY_SOURCE=2 comes in CPPFLAGS (make deb).
CPPFLAGS ?=
PREFIX   ?= /usr/local

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wno-format-nonliteral
STD      := -std=c11 -D_GNU_SOURCE
# The C-only warnings (prototypes) do not apply to C++.
CXXWARN  := -Wall -Wextra -Wshadow -Wformat=2 -Wno-format-nonliteral

.DEFAULT_GOAL := all

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
B        := build/asan
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
else ifeq ($(SANITIZE),thread)
B        := build/tsan
SAN      := -fsanitize=thread -fno-omit-frame-pointer
else
B        := build
SAN      :=
endif

JSON_CFLAGS := $(shell $(PKG_CONFIG) --cflags json-c 2>/dev/null)
JSON_LIBS   := $(shell $(PKG_CONFIG) --libs json-c 2>/dev/null || echo -ljson-c)
INIH_LIBS   := $(shell $(PKG_CONFIG) --libs inih 2>/dev/null || echo -linih)
SQLITE_LIBS := $(shell $(PKG_CONFIG) --libs sqlite3 2>/dev/null || echo -lsqlite3)
# The HTTP monitoring endpoint (host/daemon/http.c).
MHD_CFLAGS  := $(shell $(PKG_CONFIG) --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS    := $(shell $(PKG_CONFIG) --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
CRIT_CFLAGS := $(shell $(PKG_CONFIG) --cflags criterion 2>/dev/null)
CRIT_LIBS   := $(shell $(PKG_CONFIG) --libs criterion 2>/dev/null || echo -lcriterion)

ALL_CFLAGS  := $(STD) $(WARN) $(CPPFLAGS) $(CFLAGS) $(SAN) -MMD -MP -Isdk/include -Ihost \
            $(JSON_CFLAGS)
ALL_LDFLAGS := $(LDFLAGS) $(SAN)
ALL_CXXFLAGS := -std=c++17 $(CXXWARN) $(CPPFLAGS) $(CXXFLAGS) $(SAN) -MMD -MP -Isdk/include \
            $(JSON_CFLAGS)
# Criterion cannot run under ThreadSanitizer: with SANITIZE=thread only the
# daemon and the plugins are instrumented, the integration tests drive them
# from plain test binaries, and unit tests are not run.
ifeq ($(SANITIZE),thread)
TEST_CFLAGS  := $(STD) $(WARN) $(CFLAGS) -MMD -MP -Isdk/include -Ihost \
            $(JSON_CFLAGS)
TEST_LDFLAGS := $(LDFLAGS)
else
TEST_CFLAGS  := $(ALL_CFLAGS)
TEST_LDFLAGS := $(ALL_LDFLAGS)
endif

NATS_CFLAGS := $(shell $(PKG_CONFIG) --cflags libnats 2>/dev/null)
NATS_LIBS   := $(shell $(PKG_CONFIG) --libs libnats 2>/dev/null || echo -lnats)

# ---------------------------------------------------------------- host
# One folder per program, each naming its sources in a fragment: no
# wildcard decides which program a file joins (see docs/architecture.md).
include host/core/core.mk host/daemon/daemon.mk host/cli/cli.mk \
        host/nats/nats.mk host/worker/worker.mk

CORE_OBJS   := $(CORE_SRCS:%.c=$(B)/obj/%.o)
CORE_LIB    := $(B)/obj/libcmdhost-core.a
DAEMON_OBJS := $(DAEMON_SRCS:%.c=$(B)/obj/%.o)
# What unit tests link besides core: the daemon without its main().
DAEMON_LIB_OBJS := $(filter-out $(B)/obj/host/daemon/main.o,$(DAEMON_OBJS))
CLI_OBJS    := $(CLI_SRCS:%.c=$(B)/obj/%.o)
WORKER_OBJS := $(WORKER_SRCS:%.c=$(B)/obj/%.o)
# The NATS module, the one file linked with libnats: cmdhostd dlopens it
# when the configuration has a [nats] section (host/daemon/nats_host.h),
# cmdhost when --nats is given (host/cli/cli_nats.c).
NATS_MOD_OBJS := $(NATS_MOD_SRCS:%.c=$(B)/obj/pic/%.o)
NATS_MODULE   := $(B)/lib/cmdhost-nats.so

DAEMON      := $(B)/cmdhostd
CLI         := $(B)/cmdhost
# cmdhostd runs isolated plugins (and the load probe) in this program.
WORKER      := $(B)/cmdhost-worker

# ---------------------------------------------------------------- plugins
# plugins/NAME/*.c and *.cpp -> $(B)/plugins/NAME.so ; LIBS_NAME adds
# libraries.  A plugin with C++ sources is linked by $(CXX).
PLUGIN_NAMES := $(notdir $(patsubst %/,%,$(dir $(wildcard plugins/*/*.c \
                plugins/*/*.cpp))))
PLUGIN_NAMES := $(sort $(filter-out lib,$(PLUGIN_NAMES)))
PLUGINS      := $(PLUGIN_NAMES:%=$(B)/plugins/%.so)
LIBS_users   := -lsqlite3
LIBS_orders  := -lsqlite3
# C++ keeps instantiations of std templates exported whatever the
# visibility; a version script exports the descriptor alone.
LIBS_cxx_kv  := -Wl,--version-script=sdk/plugin.map
$(B)/plugins/cxx_kv.so: sdk/plugin.map
# plugins/lib/*.c: code shared by the example plugins, linked into each
# plugin that lists it (every plugin keeps its own copy: no shared state).
PLUGIN_LIB   := $(patsubst %.c,$(B)/obj/%.o,$(wildcard plugins/lib/*.c))
$(B)/plugins/users.so $(B)/plugins/orders.so: $(PLUGIN_LIB)
PLUGIN_CFLAGS := -fPIC -fvisibility=hidden

# Rust: the crate sdk/rust (no dependencies) and the example plugin
# plugins/rust_greet, built with cargo when there is one (Debian 12's
# cargo 1.65/rustc 1.63 or newer; scripts/install-deps.sh installs it),
# skipped with a line saying so when there is none.  Cargo's
# librust_greet.so is installed as rust_greet.so; rust_greet_v2.so (its
# v2 feature) is the test's hot-swap partner, rust_greet_abort.so its
# build with panic = "abort", rust_greet_jsonc.so with json-c objects.
CARGO        ?= cargo
HAVE_CARGO   := $(shell command -v $(CARGO) >/dev/null 2>&1 && echo yes)
CARGO_DIR    := $(abspath $(B))/cargo
RUST_SRCS    := $(wildcard sdk/rust/Cargo.toml sdk/rust/src/*.rs \
                plugins/rust_greet/Cargo.toml plugins/rust_greet/src/*.rs)
ifeq ($(HAVE_CARGO),yes)
RUST_PLUGINS := $(B)/plugins/rust_greet.so
RUST_TPLUGINS := $(B)/tests/plugins/rust_greet_v2.so \
                 $(B)/tests/plugins/rust_greet_abort.so \
                 $(B)/tests/plugins/rust_greet_jsonc.so
$(B)/plugins/rust_greet.so: $(RUST_SRCS)
	@mkdir -p $(dir $@)
	cd plugins/rust_greet && CARGO_TARGET_DIR=$(CARGO_DIR)/v1 \
	    $(CARGO) build --release --offline --quiet
	cp $(CARGO_DIR)/v1/release/librust_greet.so $@
$(B)/tests/plugins/rust_greet_v2.so: $(RUST_SRCS)
	@mkdir -p $(dir $@)
	cd plugins/rust_greet && CARGO_TARGET_DIR=$(CARGO_DIR)/v2 \
	    $(CARGO) build --release --offline --quiet --features v2
	cp $(CARGO_DIR)/v2/release/librust_greet.so $@
# The same plugin with panic = "abort" (the profile set from the
# environment, which wins over Cargo.toml's): what the guide says of it.
$(B)/tests/plugins/rust_greet_abort.so: $(RUST_SRCS)
	@mkdir -p $(dir $@)
	cd plugins/rust_greet && CARGO_TARGET_DIR=$(CARGO_DIR)/abort \
	    CARGO_PROFILE_RELEASE_PANIC=abort \
	    $(CARGO) build --release --offline --quiet
	cp $(CARGO_DIR)/abort/release/librust_greet.so $@
# And with its jsonc feature: the crate's json-c feature at work.
$(B)/tests/plugins/rust_greet_jsonc.so: $(RUST_SRCS)
	@mkdir -p $(dir $@)
	cd plugins/rust_greet && CARGO_TARGET_DIR=$(CARGO_DIR)/jsonc \
	    $(CARGO) build --release --offline --quiet --features jsonc
	cp $(CARGO_DIR)/jsonc/release/librust_greet.so $@
rust-note:
else
RUST_PLUGINS :=
RUST_TPLUGINS :=
rust-note:
	@echo "rust: no cargo: sdk/rust and plugins/rust_greet not built," \
	    "their tests skip (scripts/install-deps.sh installs Debian's cargo)"
endif
.PHONY: rust-note

# tests/plugins/NAME.c or NAME.cpp -> $(B)/tests/plugins/NAME.so
TPLUGIN_SRCS := $(wildcard tests/plugins/*.c)
TPLUGINS     := $(TPLUGIN_SRCS:tests/plugins/%.c=$(B)/tests/plugins/%.so)
# TLIBS_NAME adds libraries to test plugin NAME.
TLIBS_relaybox := $(SQLITE_LIBS)

# ---------------------------------------------------------------- tests
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
UNIT_BINS   := $(UNIT_SRCS:tests/%.c=$(B)/tests/%)
INTEG_SRCS  := $(wildcard tests/integration/test_*.c)
INTEG_BINS  := $(INTEG_SRCS:tests/%.c=$(B)/tests/%)
HARNESS_OBJ := $(patsubst %,$(B)/obj/tests/integration/harness_%.o, \
               daemon files proc client reply check)
# The last place core/module.c looks for cmdhost-nats.so.
MODULE_LIBDIR := $(PREFIX)/lib/cmdhost
TEST_DEFS   := -DCMDHOST_BUILD_DIR='"$(abspath $(B))"' \
               -DCMDHOST_SOURCE_DIR='"$(abspath .)"' \
               -DCMDHOST_SANITIZE='"$(SANITIZE)"' \
               -DCMDHOST_LIBDIR='"$(MODULE_LIBDIR)"'
ifneq ($(SANITIZE),0)
# The daemon under test runs under a sanitizer: memory figures mean little.
TEST_DEFS   += -DCMDHOST_DAEMON_SANITIZED=1
endif

BENCH_SRCS  := $(wildcard tests/bench/*.c)
BENCH_BINS  := $(BENCH_SRCS:tests/bench/%.c=$(B)/bench/%)

.PHONY: all run test deps clean bench install uninstall

# Keep objects between builds (they are intermediate files to make).
.SECONDARY:

all: $(DAEMON) $(CLI) $(WORKER) $(NATS_MODULE) $(PLUGINS) $(RUST_PLUGINS) rust-note \
    $(B)/pkgconfig/cmdhost-plugin.pc

# The .pc file's Version is the header's ABI, MAJOR.MINOR.
SDK_ABI := $(shell sed -n -e 's/^\#define CMDHOST_ABI_MAJOR \([0-9]*\).*/\1/p' \
           sdk/include/cmdhost/plugin.h).$(shell sed -n \
           -e 's/^\#define CMDHOST_ABI_MINOR \([0-9]*\).*/\1/p' \
           sdk/include/cmdhost/plugin.h)

# For building plugins against this source tree:
#   PKG_CONFIG_PATH=build/pkgconfig pkg-config --cflags --libs cmdhost-plugin
$(B)/pkgconfig/cmdhost-plugin.pc: sdk/cmdhost-plugin.pc.in sdk/include/cmdhost/plugin.h
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(abspath sdk)|' -e 's|@INCLUDEDIR@|$${prefix}/include|' \
	    -e 's|@PLUGIN_MAP@|$(abspath sdk/plugin.map)|' \
	    -e 's|@RUSTCRATE@|$(abspath sdk/rust)|' -e 's|@ABI@|$(SDK_ABI)|' \
	    -e 's|@PLUGINDIR@|$(abspath $(B)/plugins)|' $< > $@

$(DAEMON): $(DAEMON_OBJS) $(CORE_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(INIH_LIBS) $(JSON_LIBS) $(SQLITE_LIBS) \
	    $(MHD_LIBS) -ldl -lpthread

# The linker takes only the objects of the archive a program needs.
$(CORE_LIB): $(CORE_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

# No libnats: --nats dlopens the module (see host/cli/cli_nats.c).
$(CLI): $(CLI_OBJS) $(CORE_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(INIH_LIBS) $(JSON_LIBS) -ldl -lpthread

$(WORKER): $(WORKER_OBJS) $(CORE_LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(INIH_LIBS) $(JSON_LIBS) -ldl -lpthread

$(NATS_MODULE): $(NATS_MOD_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -shared -o $@ $^ $(NATS_LIBS) $(JSON_LIBS) -lpthread

$(B)/obj/pic/host/%.o: host/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(NATS_CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

# Where cmdhost-nats.so is installed; core/module.c (used by cmdhostd and
# cmdhost alike) looks there last.
$(B)/obj/host/core/module.o: CFLAGS_EXTRA := -DCMDHOST_LIBDIR='"$(MODULE_LIBDIR)"'

$(B)/obj/host/daemon/http.o: CFLAGS_EXTRA := $(MHD_CFLAGS)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CFLAGS_EXTRA) -c -o $@ $<

$(B)/obj/plugins/%.o: plugins/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PLUGIN_CFLAGS) -c -o $@ $<

$(B)/obj/plugins/%.o: plugins/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(ALL_CXXFLAGS) $(PLUGIN_CFLAGS) -c -o $@ $<

.SECONDEXPANSION:
PLUGIN_OBJS_OF = $(patsubst %.cpp,%.o,$(patsubst %.c,%.o,$(addprefix \
    $(B)/obj/,$(wildcard plugins/$(1)/*.c plugins/$(1)/*.cpp))))
$(B)/plugins/%.so: $$(call PLUGIN_OBJS_OF,$$*)
	@mkdir -p $(dir $@)
	$(if $(wildcard plugins/$*/*.cpp),$(CXX),$(CC)) $(ALL_LDFLAGS) -shared \
	    -o $@ $(filter %.o,$^) $(LIBS_$*) $(JSON_LIBS)

$(B)/obj/tests/plugins/%.o: tests/plugins/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PLUGIN_CFLAGS) -c -o $@ $<

$(B)/tests/plugins/%.so: $(B)/obj/tests/plugins/%.o
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -shared -o $@ $^ $(TLIBS_$*) $(JSON_LIBS)

$(B)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $(CRIT_CFLAGS) $(TEST_DEFS) -Ihost/core -Ihost/daemon \
	    -Itests/integration -c -o $@ $<

$(B)/tests/unit/%: $(B)/obj/tests/unit/%.o $(DAEMON_LIB_OBJS) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CRIT_LIBS) $(INIH_LIBS) $(JSON_LIBS) \
	    $(SQLITE_LIBS) $(MHD_LIBS) -ldl -lpthread

# test_alloc fails allocations on purpose: its objects and the host code
# call the allocators through tests/unit/failalloc.c (see failalloc.h).
FAILALLOC_WRAP := malloc calloc realloc strdup strndup aligned_alloc \
                  posix_memalign
$(B)/tests/unit/test_alloc: $(B)/obj/tests/unit/failalloc.o | \
    $(B)/tests/plugins/good.so
$(B)/tests/unit/test_alloc: private ALL_LDFLAGS += \
    $(FAILALLOC_WRAP:%=-Wl,--wrap=%)

# ITEST_LIBS_NAME adds libraries to integration test NAME.
ITEST_LIBS_test_idempotency := $(SQLITE_LIBS)
$(B)/tests/integration/%: $(B)/obj/tests/integration/%.o $(HARNESS_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_LDFLAGS) -o $@ $^ $(CRIT_LIBS) $(ITEST_LIBS_$*) \
	    $(JSON_LIBS) -lpthread

# The NATS tests also run a nats-server and speak to it with cnats.
NATS_HARNESS_OBJ := $(B)/obj/tests/integration/nats_harness.o
NATS_TESTS := $(filter $(B)/tests/integration/test_nats%,$(INTEG_BINS))
$(NATS_TESTS): $(B)/tests/integration/%: $(B)/obj/tests/integration/%.o \
    $(HARNESS_OBJ) $(NATS_HARNESS_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_LDFLAGS) -o $@ $^ $(CRIT_LIBS) $(NATS_LIBS) $(JSON_LIBS) -lpthread

$(B)/bench/%: tests/bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(STD) $(WARN) -O2 -g $(JSON_CFLAGS) -o $@ $< $(JSON_LIBS) -lpthread -lm

# The NATS load generator speaks NATS through cnats.
$(B)/bench/natsgen: tests/bench/natsgen.c
	@mkdir -p $(dir $@)
	$(CC) $(STD) $(WARN) -O2 -g $(NATS_CFLAGS) -o $@ $< $(NATS_LIBS) -lpthread

# ---------------------------------------------------------------- targets
deps:
	@scripts/install-deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	$(DAEMON) -c conf/cmdhost.ini

ifeq ($(SANITIZE),thread)
RUN_TESTS := $(INTEG_BINS)
else
RUN_TESTS := $(UNIT_BINS) $(INTEG_BINS)
endif

test: deps
	@$(MAKE) --no-print-directory test-build
	@scripts/run-tests.sh $(B) $(RUN_TESTS)

.PHONY: test-build check-header check-layout layout
test-build: all check-header check-layout check-man $(TPLUGINS) $(RUST_TPLUGINS) $(RUN_TESTS) tests/nats/node_modules/.ok

# nats.js, the independent client of the NATS discovery tests (pinned by
# tests/nats/package-lock.json; node_modules is not committed).
tests/nats/node_modules/.ok: tests/nats/package.json tests/nats/package-lock.json
	cd tests/nats && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The SDK header must compile alone, warning-free, as C11 and as C++17.
check-header:
	$(CC) -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Werror $(JSON_CFLAGS) \
	    -Isdk/include -fsyntax-only -x c sdk/include/cmdhost/plugin.h
	$(CXX) -std=c++17 -Wall -Wextra -Wpedantic -Wshadow -Werror $(JSON_CFLAGS) \
	    -Isdk/include -fsyntax-only -x c++ sdk/include/cmdhost/plugin.h

# The ABI layout file other languages' bindings check themselves against
# must match the header; `make layout` regenerates it after an ABI change.
check-layout:
	@CC="$(CC)" scripts/check-layout.sh

layout:
	CC="$(CC)" scripts/gen-layout.sh sdk/include > sdk/include/cmdhost/plugin-layout.txt

# ---------------------------------------------------------------- install
# make install [PREFIX=/usr/local] [DESTDIR=]: what is built in $(B) (so
# SANITIZE=1 installs the build/asan binaries), nothing rebuilt by hand.
#   sbin/cmdhostd                      the daemon (section 8)
#   bin/cmdhost                        the client, check and exec
#   bin/cmdhost-new-plugin             scripts/new-plugin
#   include/cmdhost/plugin.h           the SDK header
#   include/cmdhost/plugin-layout.txt  its ABI layout, for other languages
#   lib/pkgconfig/cmdhost-plugin.pc    with prefix=$(PREFIX)
#   lib/cmdhost/plugins/*.so           the example plugins
#   lib/cmdhost/cmdhost-nats.so        the NATS module (loaded for [nats])
#   lib/cmdhost/cmdhost-worker         isolated plugins and the load probe
#   share/cmdhost/plugin.map           version script for C++ plugins
#   share/cmdhost/rust/                the Rust crate `cmdhost` (sources)
#   share/doc/cmdhost/                 plugin-guide.md, observability.md,
#                                      scale-out.md, examples/cmdhost.ini
#   share/man/man{1,5,7,8}/            cmdhost(1), cmdhost-new-plugin(1),
#                                      cmdhost.ini(5), cmdhost-plugin(7),
#                                      cmdhostd(8)
BINDIR      := $(PREFIX)/bin
SBINDIR     := $(PREFIX)/sbin
INCLUDEDIR  := $(PREFIX)/include
LIBDIR      := $(PREFIX)/lib
PKGCONFIGDIR := $(LIBDIR)/pkgconfig
PLUGINDIR   := $(LIBDIR)/cmdhost/plugins
DATADIR     := $(PREFIX)/share
DOCDIR      := $(DATADIR)/doc/cmdhost
MANDIR      := $(DATADIR)/man
RUNSOCKET   := /run/cmdhost/cmdhost.sock
STATEDIR    := /var/lib/cmdhost
MAN_PAGES   := $(wildcard man/*.[1-8])
INSTALL     ?= install

# Written aside and renamed: two installs at once (the SDK tests run in
# parallel) must never copy a file the other is rewriting.
$(B)/install/cmdhost-plugin.pc: sdk/cmdhost-plugin.pc.in FORCE
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@INCLUDEDIR@|$${prefix}/include|' \
	    -e 's|@PLUGIN_MAP@|$${prefix}/share/cmdhost/plugin.map|' \
	    -e 's|@RUSTCRATE@|$${prefix}/share/cmdhost/rust|' -e 's|@ABI@|$(SDK_ABI)|' \
	    -e 's|@PLUGINDIR@|$${prefix}/lib/cmdhost/plugins|' $< > $@.$$$$ && \
	    mv -f $@.$$$$ $@

# The example configuration for an installed daemon: the make-run file
# with the socket, plugin_dir and databases of an installed system.
$(B)/install/cmdhost.ini: conf/cmdhost.ini FORCE
	@mkdir -p $(dir $@)
	sed -e 's|^; cmdhost.ini - .*|; cmdhost.ini - an example for an installed cmdhostd (see cmdhost.ini(5)).|' \
	    -e 's|^socket = .*|socket = $(RUNSOCKET)|' \
	    -e 's|^plugin_dir = .*|plugin_dir = $(PLUGINDIR)|' \
	    -e 's|^state_dir = .*|state_dir = $(STATEDIR)|' \
	    -e 's|^workflow_dir = .*|workflow_dir = $(DOCDIR)/examples/workflows|' \
	    -e 's|^database = .*/\([a-z]*\.db\)$$|database = $(STATEDIR)/\1|' \
	    $< > $@.$$$$ && mv -f $@.$$$$ $@

.PHONY: FORCE
FORCE:

install: all $(B)/install/cmdhost-plugin.pc $(B)/install/cmdhost.ini
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
	    $(DESTDIR)$(INCLUDEDIR)/cmdhost $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(PLUGINDIR) $(DESTDIR)$(DATADIR)/cmdhost \
	    $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 \
	    $(DESTDIR)$(MANDIR)/man8
	$(INSTALL) -m 0755 $(DAEMON) $(DESTDIR)$(SBINDIR)/cmdhostd
	$(INSTALL) -m 0755 $(CLI) $(DESTDIR)$(BINDIR)/cmdhost
	$(INSTALL) -m 0755 scripts/new-plugin $(DESTDIR)$(BINDIR)/cmdhost-new-plugin
	$(INSTALL) -m 0644 sdk/include/cmdhost/plugin.h \
	    sdk/include/cmdhost/plugin-layout.txt $(DESTDIR)$(INCLUDEDIR)/cmdhost/
	$(INSTALL) -m 0644 $(B)/install/cmdhost-plugin.pc $(DESTDIR)$(PKGCONFIGDIR)/
	$(INSTALL) -m 0755 $(PLUGINS) $(RUST_PLUGINS) $(DESTDIR)$(PLUGINDIR)/
	$(INSTALL) -m 0755 $(NATS_MODULE) $(DESTDIR)$(LIBDIR)/cmdhost/
	$(INSTALL) -m 0755 $(WORKER) $(DESTDIR)$(LIBDIR)/cmdhost/
	$(INSTALL) -m 0644 sdk/plugin.map $(DESTDIR)$(DATADIR)/cmdhost/
	$(INSTALL) -d $(DESTDIR)$(DATADIR)/cmdhost/rust/src \
	    $(DESTDIR)$(DATADIR)/cmdhost/rust/tests
	$(INSTALL) -m 0644 sdk/rust/Cargo.toml sdk/rust/README.md \
	    $(DESTDIR)$(DATADIR)/cmdhost/rust/
	$(INSTALL) -m 0644 sdk/include/cmdhost/plugin-layout.txt \
	    $(DESTDIR)$(DATADIR)/cmdhost/rust/
	$(INSTALL) -m 0644 sdk/rust/src/*.rs $(DESTDIR)$(DATADIR)/cmdhost/rust/src/
	$(INSTALL) -m 0644 sdk/rust/tests/*.rs $(DESTDIR)$(DATADIR)/cmdhost/rust/tests/
	$(INSTALL) -m 0644 sdk/README.md $(DESTDIR)$(DOCDIR)/plugin-guide.md
	$(INSTALL) -m 0644 docs/observability.md $(DESTDIR)$(DOCDIR)/observability.md
	$(INSTALL) -m 0644 docs/scale-out.md $(DESTDIR)$(DOCDIR)/scale-out.md
	$(INSTALL) -m 0644 $(B)/install/cmdhost.ini $(DESTDIR)$(DOCDIR)/examples/
	$(INSTALL) -d $(DESTDIR)$(DOCDIR)/examples/workflows
	$(INSTALL) -m 0644 conf/workflows/*.json $(DESTDIR)$(DOCDIR)/examples/workflows/
	for m in $(MAN_PAGES); do \
	    $(INSTALL) -m 0644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/ || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/cmdhostd $(DESTDIR)$(BINDIR)/cmdhost \
	    $(DESTDIR)$(BINDIR)/cmdhost-new-plugin \
	    $(DESTDIR)$(INCLUDEDIR)/cmdhost/plugin.h \
	    $(DESTDIR)$(INCLUDEDIR)/cmdhost/plugin-layout.txt \
	    $(DESTDIR)$(PKGCONFIGDIR)/cmdhost-plugin.pc \
	    $(PLUGIN_NAMES:%=$(DESTDIR)$(PLUGINDIR)/%.so) \
	    $(DESTDIR)$(PLUGINDIR)/rust_greet.so \
	    $(DESTDIR)$(LIBDIR)/cmdhost/cmdhost-nats.so \
	    $(DESTDIR)$(LIBDIR)/cmdhost/cmdhost-worker \
	    $(DESTDIR)$(DATADIR)/cmdhost/plugin.map \
	    $(DESTDIR)$(DOCDIR)/plugin-guide.md \
	    $(DESTDIR)$(DOCDIR)/observability.md \
	    $(DESTDIR)$(DOCDIR)/scale-out.md \
	    $(DESTDIR)$(DOCDIR)/examples/cmdhost.ini
	for m in $(notdir $(MAN_PAGES)); do \
	    rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m; \
	done
	rm -rf $(DESTDIR)$(DATADIR)/cmdhost/rust
	-rmdir $(DESTDIR)$(INCLUDEDIR)/cmdhost $(DESTDIR)$(PLUGINDIR) \
	    $(DESTDIR)$(LIBDIR)/cmdhost $(DESTDIR)$(DATADIR)/cmdhost \
	    $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null

# The man pages must render without a warning.
.PHONY: check-man
check-man:
	@for m in $(MAN_PAGES); do \
	    out=$$(MANWIDTH=80 man -l --warnings $$m 2>&1 >/dev/null; \
	        groff -ww -z -man $$m 2>&1); \
	    if [ -n "$$out" ]; then echo "$$m: $$out"; exit 1; fi; \
	done; echo "man pages: $(words $(MAN_PAGES)) render cleanly"

# Benchmarks: an optimized build of its own in build/bench, then
# scripts/bench.sh runs every scenario and writes build/bench.json, and
# scripts/bench-peers.sh the peers (Node.js, Python asyncio, Redis) and
# the payload-size and connection curves: build/bench-peers.json;
# scripts/bench-curves.sh the command-count and loop-count curves:
# build/bench-curves.json; then
# the cost of metrics and logging against the same daemon built with
# metrics compiled out (build/bench-nometrics): build/bench-obs.json;
# the respawn time and the load probe's cost (bench-iso.sh); then a
# three-step workflow against three echo calls at each durability level
# of its store (bench-wf.sh): build/bench-wf.json; the cost of emitting
# events (bench-events.sh): build/bench-events.json; last,
# instructions per request of the text and tree paths (bench-ir.sh).
bench: bench-deps
	@$(MAKE) --no-print-directory B=build/bench CFLAGS="-O2 -DNDEBUG" \
	    bench-build
	@$(MAKE) --no-print-directory B=build/bench-nometrics \
	    CFLAGS="-O2 -DNDEBUG -DCMDHOST_NO_METRICS" build/bench-nometrics/cmdhostd
	@scripts/bench.sh build/bench
	@scripts/bench-peers.sh build/bench
	@scripts/bench-curves.sh build/bench
	@scripts/bench-obs.sh build/bench build/bench-nometrics
	@scripts/bench-iso.sh build/bench
	@scripts/bench-wf.sh build/bench
	@scripts/bench-events.sh build/bench
	@if command -v valgrind >/dev/null 2>&1; then \
	    echo "instructions per request, text and json-c payload paths:"; \
	    scripts/bench-ir.sh build/bench build/bench/bench/loadgen; fi

# The test dependencies and the benchmark's peers (Redis, Python).
.PHONY: bench-deps
bench-deps:
	@scripts/install-deps.sh --bench

.PHONY: bench-build
bench-build: all $(TPLUGINS) $(BENCH_BINS)

# Fuzzing (clang's libFuzzer, with ASan+UBSan): each harness in
# tests/fuzz/ runs for FUZZ_SECONDS, starting from the corpus kept in
# tests/fuzz/corpus/NAME/; new inputs go to build/fuzz/corpus-NAME/.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := $(STD) -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined -Isdk/include -Ihost/core \
                $(JSON_CFLAGS)
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_NAMES:%=build/fuzz/fuzz_%)
# The host sources each harness links with.
FUZZ_SRCS_request := host/core/request.c host/core/buf.c host/core/jsoncheck.c host/core/jscan.c
FUZZ_SRCS_reply   := host/core/request.c host/core/buf.c host/core/jsoncheck.c host/core/jscan.c
FUZZ_SRCS_frame   := host/core/frame.c
FUZZ_SRCS_body_text := host/core/body_text.c host/core/buf.c host/core/jscan.c
# The scanner against json-c (jscan_diff.h, shared with the unit test
# tests/unit/test_jscan_diff.c that replays the kept corpus).
FUZZ_SRCS_jscan_diff := host/core/envelope.c host/core/request.c \
                host/core/buf.c host/core/jsoncheck.c host/core/jscan.c
build/fuzz/fuzz_jscan_diff: tests/fuzz/jscan_diff.h

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_SRCS_$$*)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $(filter %.c,$^) $(JSON_LIBS) -lm

.PHONY: fuzz fuzz-build
fuzz-build:
	@scripts/install-deps.sh --fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BINS)

fuzz: fuzz-build
	@set -e; for f in $(FUZZ_NAMES); do \
	    mkdir -p build/fuzz/corpus-$$f tests/fuzz/corpus/$$f; \
	    echo "fuzz: $$f for $(FUZZ_SECONDS) s"; \
	    dict=; [ -f tests/fuzz/$$f.dict ] && dict=-dict=tests/fuzz/$$f.dict; \
	    build/fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) $$dict \
	        -print_final_stats=1 -artifact_prefix=build/fuzz/$$f- \
	        build/fuzz/corpus-$$f tests/fuzz/corpus/$$f; \
	done

# The Debian packages cmdhost and cmdhost-dev (debian/): dpkg-buildpackage
# in a copy of the tree's files under build/deb/, then lintian on them.
.PHONY: deb
deb:
	@scripts/deb.sh

clean:
	rm -rf build

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
