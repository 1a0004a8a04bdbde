# miniproxyd. `make` builds, `make test` runs every test, `make run` starts the demo.
# See README.md for the rest.

CC       ?= cc
PKGS     := inih check openssl
BUILD    ?= build
VERSION  := 0.1.0

# Dependencies come from Debian through pkg-config. When they are missing,
# scripts/deps.sh installs them (as root) or says the exact command.
DEPS_OK := $(shell pkg-config --exists $(PKGS) 2>/dev/null && echo yes)
ifneq ($(DEPS_OK),yes)
ifeq ($(filter deps help clean,$(MAKECMDGOALS)),)
$(info miniproxyd: build dependencies missing, running scripts/deps.sh)
DEPS_RUN := $(shell sh scripts/deps.sh >&2; echo $$?)
ifneq ($(DEPS_RUN),0)
$(error scripts/deps.sh failed; install the packages it names and run make again)
endif
endif
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wno-format-nonliteral
# OPT and SAN are for the build flavour (`make asan` sets both); CFLAGS and
# LDFLAGS from the command line are added last.
OPT      ?= -O2 -g
SAN      ?=
# OPENSSL_API_COMPAT: OpenSSL 3.0's API without what it deprecates.
ALL_CFLAGS = -std=gnu11 $(WARN) -Iinclude -DMP_VERSION='"$(VERSION)"' -D_GNU_SOURCE \
            -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED \
            $(shell pkg-config --cflags inih openssl 2>/dev/null) $(OPT) $(SAN) $(CFLAGS)
ALL_LDFLAGS = $(SAN) $(LDFLAGS)
LDLIBS   += $(shell pkg-config --libs inih openssl 2>/dev/null) -lm
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

LIB_SRC   := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC  := $(wildcard tests/unit_*.c)
IT_SRC    := $(wildcard tests/it_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/%.c=$(BUILD)/tests/%)
IT_BIN    := $(IT_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_LIB  := $(BUILD)/tests/testlib.o

.PHONY: all test unit it asan run deps clean fuzz format help install uninstall bench-route
.SECONDARY:

all: $(BUILD)/miniproxyd $(BUILD)/testapp

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

# Made anew each time, so an object whose source was removed does not linger in it.
$(BUILD)/libmp.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/miniproxyd: $(BUILD)/src/main.o $(BUILD)/libmp.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# The upstream app for tests and the demo (threads are fine there: it is not the proxy).
$(BUILD)/testapp: tests/testapp.c tests/testpattern.h tests/testws.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -pthread -o $@ $< $(LDLIBS)

$(BUILD)/tests/testlib.o: tests/testlib.c tests/testlib.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_LIB) $(BUILD)/libmp.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS) $(CHECK_LIBS)

# Every test: unit suites first (fast), then integration suites that start
# the real daemon in front of real upstream processes on ephemeral ports.
# The suites also use curl: make sure every package is there (quick when it is).
test: deps all $(UNIT_BIN) $(IT_BIN)
	@sh tests/run.sh $(BUILD) $(UNIT_BIN) $(IT_BIN)

unit: all $(UNIT_BIN)
	@sh tests/run.sh $(BUILD) $(UNIT_BIN)

it: all $(IT_BIN)
	@sh tests/run.sh $(BUILD) $(IT_BIN)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

# libFuzzer targets (clang), each run for FUZZ_SECONDS under ASan and UBSan,
# one after the other:
#   http    request and response heads, chunked bodies     seeds: tests/fuzz-corpus
#   resp    a response head, then its chunked body         seeds: tests/fuzz-corpus-resp
#   config  a whole INI file through cfg_load_string()     seeds: tests/fuzz-corpus-config
# The seeds in the tree stay small; what the fuzzer adds goes to
# $(BUILD)/fuzz/corpus-NAME and crashes to $(BUILD)/fuzz/NAME-crash-*, never
# into the tree. `make fuzz FUZZ_TARGETS=resp` runs one.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= http resp config
FUZZ_CC      ?= clang
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -Wall -Wextra -Werror -Iinclude -D_GNU_SOURCE \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_SRC_http   := tests/fuzz_http.c src/http.c src/buf.c
FUZZ_SRC_resp   := tests/fuzz_resp.c src/http.c
FUZZ_SRC_config := tests/fuzz_config.c src/config.c src/buf.c src/privs.c src/tls.c src/log.c \
                   src/route.c src/upconn.c src/net.c
FUZZ_LIBS_config = $(shell pkg-config --libs inih openssl 2>/dev/null) -ldl
FUZZ_SEEDS_http   := tests/fuzz-corpus
FUZZ_SEEDS_resp   := tests/fuzz-corpus-resp
FUZZ_SEEDS_config := tests/fuzz-corpus-config

fuzz:
	@mkdir -p $(BUILD)/fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
	    case $$t in \
	    http) src="$(FUZZ_SRC_http)"; libs=""; seeds=$(FUZZ_SEEDS_http) ;; \
	    resp) src="$(FUZZ_SRC_resp)"; libs=""; seeds=$(FUZZ_SEEDS_resp) ;; \
	    config) src="$(FUZZ_SRC_config)"; libs="$(FUZZ_LIBS_config)"; \
	        seeds=$(FUZZ_SEEDS_config) ;; \
	    *) echo "make fuzz: unknown target $$t (http, resp, config)" >&2; exit 2 ;; \
	    esac; \
	    echo "$(FUZZ_CC) ... -o $(BUILD)/fuzz/fuzz_$$t"; \
	    $(FUZZ_CC) $(FUZZ_CFLAGS) $$src -o $(BUILD)/fuzz/fuzz_$$t $$libs; \
	    mkdir -p $(BUILD)/fuzz/corpus-$$t; \
	    echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
	    $(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 \
	        -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/$$t- \
	        $(BUILD)/fuzz/corpus-$$t $$seeds; \
	done

# What route matching costs per request with 1, 10 and 100 routes (run by hand; figures in
# doc/benchmarks.md).
bench-route: $(BUILD)/tests/bench_route
	$(BUILD)/tests/bench_route

$(BUILD)/tests/bench_route: $(BUILD)/tests/bench_route.o $(BUILD)/libmp.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# The demo: three app instances and the proxy on the bundled miniproxy.ini.
run: all
	@sh scripts/demo.sh $(BUILD)

deps:
	@sh scripts/deps.sh

format:
	clang-format -i src/*.c include/*.h tests/*.c tests/*.h

clean:
	rm -rf build build-asan

# Installation: `make install` (as root), or into a staging tree for packaging:
# `make install DESTDIR=/tmp/stage PREFIX=/usr`. The example configuration is
# installed only where there is none: an operator's file is never overwritten
# (nor removed by uninstall). /etc is not under PREFIX: that is where
# systemd, logrotate and the default -c path look.
PREFIX     ?= /usr/local
DESTDIR    ?=
SBINDIR    := $(PREFIX)/sbin
MANDIR     := $(PREFIX)/share/man
UNITDIR    := $(PREFIX)/lib/systemd/system
CONFDIR    := /etc/miniproxyd
LOGROTDIR  := /etc/logrotate.d

install: $(BUILD)/miniproxyd
	install -D -m 755 $(BUILD)/miniproxyd $(DESTDIR)$(SBINDIR)/miniproxyd
	install -D -m 644 etc/miniproxyd.8 $(DESTDIR)$(MANDIR)/man8/miniproxyd.8
	install -D -m 644 etc/miniproxy.ini.5 $(DESTDIR)$(MANDIR)/man5/miniproxy.ini.5
	sed 's|/usr/sbin/|$(SBINDIR)/|g' etc/miniproxyd.service > $(BUILD)/miniproxyd.service
	install -D -m 644 $(BUILD)/miniproxyd.service $(DESTDIR)$(UNITDIR)/miniproxyd.service
	install -D -m 644 etc/miniproxyd.logrotate $(DESTDIR)$(LOGROTDIR)/miniproxyd
	@if [ -e $(DESTDIR)$(CONFDIR)/miniproxy.ini ]; then \
	    echo "keeping the existing $(DESTDIR)$(CONFDIR)/miniproxy.ini"; \
	else \
	    echo "install -D -m 644 etc/miniproxy.ini $(DESTDIR)$(CONFDIR)/miniproxy.ini"; \
	    install -D -m 644 etc/miniproxy.ini $(DESTDIR)$(CONFDIR)/miniproxy.ini; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/miniproxyd
	rm -f $(DESTDIR)$(MANDIR)/man8/miniproxyd.8 $(DESTDIR)$(MANDIR)/man5/miniproxy.ini.5
	rm -f $(DESTDIR)$(UNITDIR)/miniproxyd.service
	rm -f $(DESTDIR)$(LOGROTDIR)/miniproxyd
	@echo "left in place: $(DESTDIR)$(CONFDIR)/miniproxy.ini (the operator's configuration)"

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
