# relm — one plain Makefile.  `make` builds into build/, `make check` runs
# the suite.  Missing Debian packages are installed by the build itself
# (apt-get as root, or through sudo): see the `deps` rule.

CC         ?= cc
PKG_CONFIG ?= pkg-config
BUILD      ?= build
PREFIX     ?= /usr/local
DESTDIR    ?=
CFLAGS     ?= -O2 -g
V          ?= 0

# Libraries every program links, and the Debian packages that provide them.
PKGS      = libsodium libuv sqlite3 libcjson libpq
TEST_PKGS = check
DEB_PKGS  = pkg-config libsodium-dev libuv1-dev libsqlite3-dev libcjson-dev libpq-dev postgresql-15 \
            check libsubunit-dev

WARN = -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes \
       -Wmissing-prototypes -Wformat=2 -Wpointer-arith -Wcast-qual \
       -Wundef -Wvla -Wno-missing-field-initializers
ifeq ($(CI),true)
WARN += -Werror
endif
ifneq ($(WERROR),)
WARN += -Werror
endif

# Recursive (=) so pkg-config runs only when a recipe needs it — after the
# deps stamp below has installed what was missing.
PKG_CFLAGS  = $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS    = $(shell $(PKG_CONFIG) --libs $(PKGS))
TEST_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(TEST_PKGS))
TEST_LIBS   = $(shell $(PKG_CONFIG) --libs $(TEST_PKGS))
# lib/ sees only its own headers; daemon/, tests/, bench/ and fuzz/ see both.
# Includes name their folder: "engine/rel.h", "api/server.h".
BASE_CFLAGS = $(WARN) -D_GNU_SOURCE $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
LIB_CFLAGS  = -Ilib $(BASE_CFLAGS)
ALL_CFLAGS  = -Ilib -Idaemon $(BASE_CFLAGS)

ifeq ($(V),0)
Q = @
say = @printf '  %-7s %s\n' $(1) $(2);
else
Q =
say =
endif

# ---- table of contents -------------------------------------------------
# lib/: librelm, the pure engine (no I/O, clock or randomness of its own)
#   lib/crypto   primitives, HKDF, X3DH
#   lib/wire     codecs: envelopes, payloads, invites, addresses, mailbox frames
#   lib/engine   the relationship engine: chain tree, fork rule, ratchet, steps
#   lib/store    the SQLite store
#   lib/core     the engine bound to the store: one step, one transaction
LIB_SRC  = $(sort $(wildcard lib/*.c lib/*/*.c))
# daemon/: the programs and what they share
#   daemon/relmd           relmd's main, the application (store, timers, outbox pump)
#   daemon/api             the JSON-RPC socket API: server, connections, methods, events
#   daemon/mailbox_client  relmd's connection to mailbox servers
#   daemon/mailbox_server  relm-mailbox (also embedded in relmd)
#   daemon/relmctl         the command-line client
PROG_MAIN = daemon/relmd/relmd.c daemon/relmctl/relmctl.c daemon/mailbox_server/relm-mailbox.c
PROGRAMS = $(basename $(notdir $(PROG_MAIN)))
#   daemon/web             relm-web, the browser front end (its own libraries:
#                          libmicrohttpd, libqrencode; see the relm-web section)
DMN_SRC  = $(filter-out $(PROG_MAIN) daemon/web/% daemon/relmctl/%,$(sort $(wildcard daemon/*.c daemon/*/*.c)))
#   relmctl's parts (daemon/relmctl/*.c) link only into relmctl, with
#   libqrencode for `device pair`'s QR code (see the relm-web section)
CTL_SRC  = $(filter-out daemon/relmctl/relmctl.c,$(sort $(wildcard daemon/relmctl/*.c)))
# tests/: one Check suite per module (tests/check_<module>.c), helpers in
# tests/util_*.c, shell/integration drivers in tests/*.sh
TEST_SRC = $(sort $(wildcard tests/check_*.c))
TUTIL_SRC = $(sort $(wildcard tests/util_*.c))

LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
DMN_OBJ  = $(DMN_SRC:%.c=$(BUILD)/%.o)
TUTIL_OBJ = $(TUTIL_SRC:%.c=$(BUILD)/%.o)
TESTS    = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
PROGS    = $(PROGRAMS:%=$(BUILD)/%) $(BUILD)/relm-web
DEPS_OK  = $(BUILD)/.deps-ok

.SECONDARY:
.PHONY: all check purity asan sim valgrind ct fuzz bench bench-1m demo install clean deps crash-long soak
all: $(PROGS) $(BUILD)/librelm.a

# ---- dependencies: install missing Debian packages ----------------------
# The one place that installs packages.  $(call need_debs,PKG ...) installs
# those that are not installed — as root, or through sudo — after saying
# which; every target that needs a package (build, bench, valgrind, fuzz)
# goes through it, so a fresh Debian 12 machine needs only the README's two
# commands.  Targets built in parallel (make -j) may need packages at the
# same time: flock makes them take turns instead of failing on dpkg's lock.
define need_debs
	$(Q)missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	    grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "  DEPS    installing Debian packages:" $$missing; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  lock="flock /tmp/relm-apt.lock"; \
	  $$lock $$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq && \
	  $$lock $$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$missing >/dev/null || \
	    { echo "error: could not install: $$missing (run as root or with sudo)" >&2; exit 1; }; \
	fi
endef

deps: $(DEPS_OK)
$(DEPS_OK):
	$(Q)mkdir -p $(BUILD)
	$(call need_debs,$(DEB_PKGS))
	$(Q)$(PKG_CONFIG) --exists $(PKGS) $(TEST_PKGS) || { echo "error: pkg-config cannot find $(PKGS) $(TEST_PKGS)" >&2; exit 1; }
	$(Q)touch $@

# ---- build rules ---------------------------------------------------------
$(BUILD)/lib/%.o: lib/%.c | $(DEPS_OK)
	$(call say,CC,$<)mkdir -p $(dir $@) && $(CC) $(LIB_CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.c | $(DEPS_OK)
	$(call say,CC,$<)mkdir -p $(dir $@) && $(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/tests/%.o: tests/%.c | $(DEPS_OK)
	$(call say,CC,$<)mkdir -p $(dir $@) && $(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -Itests -c $< -o $@

$(BUILD)/librelm.a: $(LIB_OBJ)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

$(BUILD)/libdaemon.a: $(DMN_OBJ) | $(DEPS_OK)
	$(call say,AR,$@)rm -f $@ && ar rcs $@ $^

define program
$(BUILD)/$(basename $(notdir $(1))): $(BUILD)/$(1:.c=.o) $(BUILD)/libdaemon.a $(BUILD)/librelm.a
	$$(call say,LD,$$@)$$(CC) $$(CFLAGS) $$(LDFLAGS) $$< $(BUILD)/libdaemon.a $(BUILD)/librelm.a $$(PKG_LIBS) -o $$@
endef
$(foreach m,$(filter-out daemon/relmctl/relmctl.c,$(PROG_MAIN)),$(eval $(call program,$(m))))

# ---- the deterministic simulator (tests/sim, proto/invariants.md) ---------
# Many devices of two protons in one process, on the real engine; `make
# check` runs a few thousand schedules, `make sim` the big grid.
SIM_SRC   = $(sort $(wildcard tests/sim/*.c))
SIM_OBJ   = $(SIM_SRC:%.c=$(BUILD)/%.o)
SIM_SEEDS ?= 100000
SIM_SEED  ?= 1
$(BUILD)/relm-sim: $(SIM_OBJ) $(BUILD)/tests/util_rand.o $(BUILD)/librelm.a
	$(call say,LD,$@)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(PKG_LIBS) -o $@

# relm-sim-core: whole daemons (lib/core on lib/store) instead of the engine
# on a model of the store; slower, so fewer schedules.
SIMCORE_SRC = $(sort $(wildcard tests/sim/core/*.c))
$(BUILD)/relm-sim-core: $(SIMCORE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/tests/util_rand.o $(BUILD)/tests/util_faultvfs.o \
                        $(BUILD)/librelm.a
	$(call say,LD,$@)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(PKG_LIBS) -o $@

sim: $(BUILD)/relm-sim $(BUILD)/relm-sim-core
	$(Q)$(BUILD)/relm-sim --seeds $(SIM_SEEDS) --seed $(SIM_SEED)
	$(Q)$(BUILD)/relm-sim --scenario all --seeds 2000 --seed $(SIM_SEED)
	$(Q)$(BUILD)/relm-sim-core --seeds 900 --seed $(SIM_SEED)
	$(Q)$(BUILD)/relm-sim-core --seeds 300 --seed $(SIM_SEED) --steps 600
	$(Q)$(BUILD)/relm-sim-core --seeds 600 --strategy leader --seed $(SIM_SEED)
	$(Q)$(BUILD)/relm-sim-core --seeds 600 --strategy fanout --seed $(SIM_SEED)
	$(Q)$(BUILD)/relm-sim-core --seeds 900 --strategy mixed --seed $(SIM_SEED)
	$(Q)$(BUILD)/relm-sim --seeds 2000 --revoke 1 --seed $(SIM_SEED)
	$(Q)$(BUILD)/relm-sim --seeds 5000 --strategy leader --seed $(SIM_SEED)
	$(Q)$(BUILD)/relm-sim --seeds 5000 --strategy fanout --seed $(SIM_SEED)
	$(Q)$(BUILD)/relm-sim --seeds 5000 --strategy mixed --seed $(SIM_SEED)

# A suite too big for one file keeps its parts in a folder named after it
# (tests/crash for check_crash, tests/mailbox_proto for check_mailbox_proto),
# linked into that suite alone.
SUITE_PARTS = $(patsubst %.c,$(BUILD)/%.o,$(sort $(wildcard tests/$(1)/*.c)))
.SECONDEXPANSION:
$(BUILD)/tests/check_%: $(BUILD)/tests/check_%.o $$(call SUITE_PARTS,$$*) $(TUTIL_OBJ) $(BUILD)/libdaemon.a $(BUILD)/librelm.a
	$(call say,LD,$@)$(CC) $(CFLAGS) $(LDFLAGS) $< $(call SUITE_PARTS,$*) $(TUTIL_OBJ) $(BUILD)/libdaemon.a $(BUILD)/librelm.a $(PKG_LIBS) $(TEST_LIBS) -o $@

# ---- relm-web: the browser front end (daemon/web, proto/web.md) ------------
# HTTP through libmicrohttpd, QR codes through libqrencode; the page's files
# (daemon/web/assets/) are compiled into the binary by embed.sh (xxd -i), so
# relm-web serves nothing from outside itself.
WEB_PKGS      = libmicrohttpd libqrencode
WEB_DEB_PKGS  = libmicrohttpd-dev libqrencode-dev xxd
WEB_CFLAGS    = $(shell $(PKG_CONFIG) --cflags $(WEB_PKGS))
WEB_LIBS      = $(shell $(PKG_CONFIG) --libs $(WEB_PKGS)) -lpthread
WEB_DEPS_OK   = $(BUILD)/.web-deps-ok
WEB_SRC       = $(sort $(wildcard daemon/web/*.c))
WEB_OBJ       = $(WEB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/web_assets.o
WEB_ASSETS    = $(sort $(wildcard daemon/web/assets/*))

$(WEB_DEPS_OK): | $(DEPS_OK)
	$(call need_debs,$(WEB_DEB_PKGS))
	$(Q)$(PKG_CONFIG) --exists $(WEB_PKGS) || { echo "error: pkg-config cannot find $(WEB_PKGS)" >&2; exit 1; }
	$(Q)touch $@

$(BUILD)/daemon/web/%.o: daemon/web/%.c | $(WEB_DEPS_OK)
	$(call say,CC,$<)mkdir -p $(dir $@) && $(CC) $(ALL_CFLAGS) $(WEB_CFLAGS) -c $< -o $@

$(BUILD)/gen/web_assets.c: daemon/web/embed.sh $(WEB_ASSETS) | $(WEB_DEPS_OK)
	$(call say,GEN,$@)mkdir -p $(dir $@) && sh daemon/web/embed.sh $@.tmp $(WEB_ASSETS) && mv $@.tmp $@

$(BUILD)/gen/web_assets.o: $(BUILD)/gen/web_assets.c
	$(call say,CC,$<)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/relm-web: $(WEB_OBJ) $(BUILD)/libdaemon.a $(BUILD)/librelm.a
	$(call say,LD,$@)$(CC) $(CFLAGS) $(LDFLAGS) $(WEB_OBJ) $(BUILD)/libdaemon.a $(BUILD)/librelm.a $(PKG_LIBS) $(WEB_LIBS) -o $@

$(BUILD)/daemon/relmctl/%.o: daemon/relmctl/%.c | $(WEB_DEPS_OK)
	$(call say,CC,$<)mkdir -p $(dir $@) && $(CC) $(ALL_CFLAGS) $(WEB_CFLAGS) -c $< -o $@

$(BUILD)/relmctl: $(BUILD)/daemon/relmctl/relmctl.o $(CTL_SRC:%.c=$(BUILD)/%.o) $(BUILD)/libdaemon.a $(BUILD)/librelm.a
	$(call say,LD,$@)$(CC) $(CFLAGS) $(LDFLAGS) $(filter %.o,$^) $(BUILD)/libdaemon.a $(BUILD)/librelm.a $(PKG_LIBS) \
	  $(shell $(PKG_CONFIG) --libs libqrencode) -o $@

# check_web also links relm-web's pure checks (guard.c) to test them directly.
$(BUILD)/tests/check_web: $(BUILD)/tests/check_web.o $(BUILD)/daemon/web/guard.o $(TUTIL_OBJ) $(BUILD)/libdaemon.a $(BUILD)/librelm.a
	$(call say,LD,$@)$(CC) $(CFLAGS) $(LDFLAGS) $< $(BUILD)/daemon/web/guard.o $(TUTIL_OBJ) $(BUILD)/libdaemon.a $(BUILD)/librelm.a $(PKG_LIBS) $(TEST_LIBS) -o $@

# The browser test (tests/test_web.sh): Debian's Chromium, its driver and
# Selenium, and zbarimg to read the QR codes back; installed like every
# other dependency.
BROWSER_DEB_PKGS = chromium chromium-driver python3-selenium zbar-tools
BROWSER_DEPS_OK  = $(BUILD)/.browser-deps-ok
$(BROWSER_DEPS_OK): | $(DEPS_OK)
	$(call need_debs,$(BROWSER_DEB_PKGS))
	$(Q)touch $@

# ---- tests -----------------------------------------------------------------
# Every suite runs even if an earlier one fails; the exit status is the OR.
check: $(TESTS) $(PROGS) $(BUILD)/relm-sim $(BUILD)/relm-sim-core purity | $(BROWSER_DEPS_OK)
	$(Q)fail=0; for t in $(TESTS); do \
	  echo "== $$t"; BUILD=$(BUILD) $$t || fail=1; \
	done; \
	seed=$${RELM_SEED:-$(SIM_SEED)}; \
	echo "== relm-sim (seed $$seed)"; \
	$(BUILD)/relm-sim --seeds 2000 --seed $$seed || fail=1; \
	$(BUILD)/relm-sim --scenario all --seeds 40 --seed $$seed || fail=1; \
	$(BUILD)/relm-sim-core --seeds 90 --seed $$seed || fail=1; \
	$(BUILD)/relm-sim --seeds 300 --revoke 1 --seed $$seed || fail=1; \
	$(BUILD)/relm-sim --seeds 400 --strategy leader --seed $$seed || fail=1; \
	$(BUILD)/relm-sim --seeds 400 --strategy fanout --seed $$seed || fail=1; \
	$(BUILD)/relm-sim --seeds 300 --strategy mixed --seed $$seed || fail=1; \
	$(BUILD)/relm-sim-core --seeds 30 --strategy leader --seed $$seed || fail=1; \
	$(BUILD)/relm-sim-core --seeds 30 --strategy fanout --seed $$seed || fail=1; \
	$(BUILD)/relm-sim-core --seeds 45 --strategy mixed --seed $$seed || fail=1; \
	echo "== relm-sim-core: schedules that once failed (devices.md §11: a stale hub, a status before its entry, both wiped, requests left after a switch, a hub without state leaving fanout, a leader's receipts after a lapse, an old deliver)"; \
	for s in 3:3,1 7:1,3 33:3,2 40:1,2 1193:2,2 1240:1,3 1254:3,1 7061:2,3 7368:3,2 7444:3,3 7292:2,2 5539:3,3; do \
	  $(BUILD)/relm-sim-core --seed $${s%%:*} --seeds 1 --devices $${s#*:} --strategy mixed >/dev/null || fail=1; done; \
	$(BUILD)/relm-sim-core --seed 1101 --seeds 1 --devices 3,1 --strategy fanout >/dev/null || fail=1; \
	echo "== relm-sim: a schedule that once failed (devices.md §5.6, pending envelopes ask siblings)"; \
	$(BUILD)/relm-sim --seed 2306 --seeds 1 --devices 1,3 --loss 0 --dup 0.05 --crash 0.02 --skew 30000 \
	  --strategy mixed >/dev/null || fail=1; \
	echo "== relm-sim: a schedule that once failed (revocation.md §2, racing heals: a reply on any heal node heals)"; \
	$(BUILD)/relm-sim --seed 824 --seeds 1 --devices 4,2 --loss 0 --dup 0.05 --crash 0 --skew 30000 \
	  --revoke 1 >/dev/null || fail=1; \
	echo "== relm-sim: a schedule that once failed (revocation.md §2, sends stay on the heal; a remote's retry on an older branch is in the window)"; \
	$(BUILD)/relm-sim --seed 5718 --seeds 1 --devices 4,4 --loss 0.05 --dup 0.05 --crash 0.02 --skew 30000 \
	  --revoke 1 >/dev/null || fail=1; \
	echo "== relm-sim: broken worlds must be caught (fixed seeds)"; \
	$(BUILD)/relm-sim --seeds 100 --mutate no-copies --expect-fail >/dev/null || fail=1; \
	$(BUILD)/relm-sim --seeds 100 --mutate sibling-loss --expect-fail >/dev/null || fail=1; \
	$(BUILD)/relm-sim --seeds 100 --revoke 1 --mutate leak-removed --expect-fail >/dev/null || fail=1; \
	$(BUILD)/relm-sim --seeds 100 --revoke 1 --mutate clone --expect-fail >/dev/null || fail=1; \
	$(BUILD)/relm-sim --scenario ce4 --seeds 300 --mutate no-carry --expect-fail >/dev/null || fail=1; \
	$(BUILD)/relm-sim --seeds 40 --no-clock-sync --expect-fail >/dev/null || fail=1; \
	$(BUILD)/relm-sim --seeds 100 --strategy leader --mutate nonleader-sends --expect-fail >/dev/null || fail=1; \
	$(BUILD)/relm-sim --seeds 100 --strategy leader --mutate drop-requests --expect-fail >/dev/null || fail=1; \
	for s in $(sort $(wildcard tests/test_*.sh)); do \
	  echo "== $$s"; BUILD=$(BUILD) sh $$s || fail=1; \
	done; \
	if [ $$fail = 0 ]; then echo "all suites passed"; else echo "SOME SUITES FAILED"; fi; exit $$fail

# The engine is pure: librelm.a calls no clock and no system randomness
# (they come through struct relm_env; daemon/system_env.c has the real ones).
PURE_FORBIDDEN = clock_gettime time gettimeofday getrandom randombytes_buf randombytes_random
purity: $(BUILD)/librelm.a
	$(Q)bad=$$(nm -u $(BUILD)/librelm.a | awk '{print $$NF}' | sort -u | \
	  grep -xF $(PURE_FORBIDDEN:%=-e %)); \
	if [ -n "$$bad" ]; then echo "error: librelm.a calls" $$bad "(the engine must take time and randomness from struct relm_env)" >&2; exit 1; fi; \
	echo "  PURE    librelm.a calls no clock and no system randomness"

# AddressSanitizer + UndefinedBehaviorSanitizer: the same suite, own build dir.
asan:
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 check

# ---- benchmarks (bench/): libolm and valgrind only for `make bench` -------
BENCH_PKGS     = olm
BENCH_DEB_PKGS = libolm-dev valgrind
BENCH_CFLAGS   = $(shell $(PKG_CONFIG) --cflags $(BENCH_PKGS))
BENCH_LIBS     = $(shell $(PKG_CONFIG) --libs $(BENCH_PKGS))
BENCH_DEPS_OK  = $(BUILD)/.bench-deps-ok

$(BENCH_DEPS_OK): | $(DEPS_OK)
	$(call need_debs,$(BENCH_DEB_PKGS))
	$(Q)$(PKG_CONFIG) --exists $(BENCH_PKGS) || { echo "error: pkg-config cannot find $(BENCH_PKGS)" >&2; exit 1; }
	$(Q)touch $@

$(BUILD)/bench/%.o: bench/%.c | $(DEPS_OK) $(BENCH_DEPS_OK)
	$(call say,CC,$<)mkdir -p $(dir $@) && $(CC) $(ALL_CFLAGS) -Itests $(BENCH_CFLAGS) -c $< -o $@

$(BUILD)/bench_engine: $(BUILD)/bench/bench_engine.o $(BUILD)/bench/engine_olm.o $(BUILD)/daemon/system_env.o $(BUILD)/librelm.a
	$(call say,LD,$@)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(PKG_LIBS) $(BENCH_LIBS) -o $@

$(BUILD)/bench_daemon: $(BUILD)/bench/bench_daemon.o
	$(call say,LD,$@)$(CC) $(CFLAGS) $(LDFLAGS) $< $(PKG_LIBS) -o $@

# bench_scale's parts: the two daemons (scale_pair), the build of their
# stores (scale_build), the measurements (bench_scale).
$(BUILD)/bench_scale: $(BUILD)/bench/bench_scale.o $(BUILD)/bench/scale_build.o $(BUILD)/bench/scale_pair.o \
                      $(BUILD)/librelm.a
	$(call say,LD,$@)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(PKG_LIBS) -o $@

$(BUILD)/bench_mailbox: $(BUILD)/bench/bench_mailbox.o $(BUILD)/tests/util_pg.o $(BUILD)/libdaemon.a $(BUILD)/librelm.a
	$(call say,LD,$@)$(CC) $(CFLAGS) $(LDFLAGS) $^ $(PKG_LIBS) -o $@

# The first run builds 100k-relationship stores under $(BUILD)/bench-scale
# (about 1 GB, a few minutes); later runs reuse them.
bench: $(BUILD)/bench_engine $(BUILD)/bench_daemon $(BUILD)/bench_scale $(BUILD)/bench_mailbox $(PROGS)
	$(Q)rm -f $(BUILD)/bench.json
	$(Q)$(BUILD)/bench_engine --json $(BUILD)/bench.engine.json
	$(Q)sh bench/bench_ir.sh $(BUILD)/bench_engine $(BUILD)/bench.ir.json 2000 200 20
	$(Q)$(BUILD)/bench_daemon --build $(BUILD) --json $(BUILD)/bench.daemon.json
	$(Q)sh bench/profile_daemon.sh $(BUILD) $(BUILD)/bench.profile.json 500
	$(Q)$(BUILD)/bench_scale --no-cold --dir $(BUILD)/bench-scale --json $(BUILD)/bench.scale.json
	$(Q)$(BUILD)/bench_mailbox --build $(BUILD) --json $(BUILD)/bench.mailbox.json \
	  $$( [ -f $(BUILD)/bench-scale/100000/b/relm.db ] && echo --relmd-store $(BUILD)/bench-scale/100000/b/relm.db )
	$(Q)$(BUILD)/bench_daemon --build $(BUILD) --devices 3 --json $(BUILD)/bench.dev3.json
	$(Q)sh bench/json_merge.sh $(BUILD)/bench.json $(BUILD)/bench.engine.json $(BUILD)/bench.ir.json \
	  $(BUILD)/bench.daemon.json $(BUILD)/bench.profile.json $(BUILD)/bench.dev3.json \
	  $(BUILD)/bench.scale.json $(BUILD)/bench.mailbox.json
	$(Q)sh bench/devices_ratio.sh $(BUILD)/bench.json
	@echo "  BENCH   $(BUILD)/bench.json"

# The scale goal's store: 1,000,000 relationships (256 built through the
# core, the rest cloned from them: bench/scale_build.c; ~10 GB of disk
# under $(BUILD)/bench-scale/1000000, reused while the stamp matches).
# Writes the scale.1m.* keys to $(BUILD)/bench.scale-1m.json and into
# $(BUILD)/bench.json.  Apart from `make bench`: its build takes minutes.
bench-1m: $(BUILD)/bench_scale
	$(Q)$(BUILD)/bench_scale --no-cold --clone --n 1000000 --rounds 3 --per 100 \
	  --dir $(BUILD)/bench-scale --json $(BUILD)/bench.scale-1m.json
	$(Q)sh bench/json_merge.sh $(BUILD)/bench.json $(BUILD)/bench.scale-1m.json
	@echo "  BENCH   $(BUILD)/bench.json"

# ---- valgrind: memcheck over the suite, and the constant-time check --------
VG_DEPS_OK = $(BUILD)/.valgrind-deps-ok
$(VG_DEPS_OK): | $(DEPS_OK)
	$(call need_debs,valgrind)
	$(Q)touch $@

# Every Check suite under memcheck, forked tests and the relmd / relmctl /
# relm-mailbox it execs included (tests/valgrind.sh says how and why).
# Not part of `make check`: ~10 minutes on 2 cores.
valgrind: $(TESTS) $(PROGS) | $(VG_DEPS_OK)
	$(Q)bash tests/valgrind.sh $(BUILD)

# ctgrind-style: secrets marked undefined, memcheck reports every branch
# and index on them (tests/ct_check.c lists what is checked and what not).
# The selftest proves a planted secret branch is caught; then the real run
# must be clean.  Built from source with -DRELM_CT_VALGRIND (lib/crypto/ct.h).
CT_SRC = tests/ct_check.c tests/util_engine.c tests/util_rand.c
$(BUILD)/ct_check: $(CT_SRC) $(LIB_SRC) $(wildcard lib/*.h tests/util_*.h) | $(VG_DEPS_OK)
	$(call say,LD,$@)$(CC) $(WARN) -D_GNU_SOURCE -DRELM_CT_VALGRIND -Ilib -Itests \
	  $(PKG_CFLAGS) $(TEST_CFLAGS) $(CFLAGS) $(LDFLAGS) $(CT_SRC) $(LIB_SRC) \
	  $(PKG_LIBS) $(TEST_LIBS) -o $@

ct: $(BUILD)/ct_check
	$(Q)valgrind -q --suppressions=tests/ct.supp $(BUILD)/ct_check --selftest >/dev/null 2>&1 || \
	  { echo "error: ct selftest: memcheck did not catch the planted secret branch" >&2; exit 1; }
	$(Q)valgrind -q --error-exitcode=1 --suppressions=tests/ct.supp $(BUILD)/ct_check
	@echo "  CT      no branch or index on secret data"

# Hours of traffic with random kill -9 of both daemons and the mailbox,
# checked by the invariants, RSS and fds sampled (SOAK_SECONDS, RELM_SEED).
SOAK_SECONDS ?= 3600
$(BUILD)/tests/soak: $(BUILD)/tests/soak.o $(TUTIL_OBJ) $(BUILD)/libdaemon.a $(BUILD)/librelm.a
	$(call say,LD,$@)$(CC) $(CFLAGS) $(LDFLAGS) $< $(TUTIL_OBJ) $(BUILD)/libdaemon.a $(BUILD)/librelm.a $(PKG_LIBS) $(TEST_LIBS) -o $@
soak: $(BUILD)/tests/soak $(PROGS)
	$(Q)BUILD=$(BUILD) SOAK_SECONDS=$(SOAK_SECONDS) $(BUILD)/tests/soak

# The crash test with many more kill points than `make check` runs.
crash-long: $(BUILD)/tests/check_crash
	$(Q)RELM_CRASH_POINTS=$${RELM_CRASH_POINTS:-5000} CK_DEFAULT_TIMEOUT=3600 $(BUILD)/tests/check_crash

# libFuzzer (clang): every fuzz/fuzz_*.c, FUZZ_SECONDS each, new inputs
# into build/fuzz/corpus_<name> (the repo corpus is only read; crashers
# found are kept there, fuzz/corpus/<name>/crash-*, so every run replays
# them).  A crash fails the target, its input in build/fuzz/<name>-crash-*.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_SRC      = $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_DEB_PKGS = clang libclang-rt-14-dev
fuzz: | $(DEPS_OK)
	$(call need_debs,$(FUZZ_DEB_PKGS))
	$(Q)command -v $(FUZZ_CC) >/dev/null || { echo "error: $(FUZZ_CC) not found" >&2; exit 1; }
	$(Q)mkdir -p $(BUILD)/fuzz; fail=0; for f in $(FUZZ_SRC); do \
	  n=$$(basename $$f .c); n=$${n#fuzz_}; \
	  echo "== fuzz $$n ($(FUZZ_SECONDS) s)"; \
	  $(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ilib -Idaemon $$f $(LIB_SRC) $(DMN_SRC) \
	    $$($(PKG_CONFIG) --cflags --libs $(PKGS)) -o $(BUILD)/fuzz/fuzz_$$n || { fail=1; continue; }; \
	  mkdir -p $(BUILD)/fuzz/corpus_$$n; \
	  $(BUILD)/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
	    -artifact_prefix=$(BUILD)/fuzz/$$n- \
	    $(BUILD)/fuzz/corpus_$$n $$( [ -d fuzz/corpus/$$n ] && echo fuzz/corpus/$$n ) \
	    > $(BUILD)/fuzz/$$n.log 2>&1; st=$$?; tail -2 $(BUILD)/fuzz/$$n.log; \
	  [ $$st = 0 ] || { echo "error: fuzz $$n failed: $(BUILD)/fuzz/$$n.log, input in $(BUILD)/fuzz/$$n-*" >&2; fail=1; }; \
	done; exit $$fail

# The README's first command: a mailbox and two daemons talk end to end.
demo: all
	$(Q)sh tests/demo.sh $(BUILD)

clean:
	rm -rf $(BUILD) build

UNITDIR_USER ?= $(PREFIX)/lib/systemd/user
UNITDIR_SYS  ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR  ?= $(PREFIX)/lib/sysusers.d
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR_USER) $(DESTDIR)$(UNITDIR_SYS) $(DESTDIR)$(SYSUSERSDIR)
	install -m 0755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	sed 's|/usr/local/bin|$(PREFIX)/bin|g' systemd/user/relmd.service   > $(DESTDIR)$(UNITDIR_USER)/relmd.service
	sed 's|/usr/local/bin|$(PREFIX)/bin|g' systemd/system/relmd.service > $(DESTDIR)$(UNITDIR_SYS)/relmd.service
	install -m 0644 systemd/system/relmd.socket $(DESTDIR)$(UNITDIR_SYS)/
	sed 's|/usr/local/bin|$(PREFIX)/bin|g' systemd/system/relm-mailbox@.service > $(DESTDIR)$(UNITDIR_SYS)/relm-mailbox@.service
	install -m 0644 systemd/system/relm.sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/relm.conf

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
