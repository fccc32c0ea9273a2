# memmap3 - build, test, install. Every variable can be overridden
# (LuaRocks' names are accepted: LUA_INCDIR, LUA_LIBDIR, LIBFLAG, CFLAGS...).

LUA         ?= lua5.4
BUSTED      ?= busted
LUACHECK    ?= luacheck
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
INCDIR      ?= $(PREFIX)/include
LUA_VERSION ?= 5.4
LUA_INCDIR  ?= /usr/include/lua$(LUA_VERSION)
LUA_LIBDIR  ?= $(LIBDIR)/lua/$(LUA_VERSION)
LUA_SHAREDIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CC          ?= cc
OPT         ?= -O2 -g
WARN        ?= -std=c11 -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes -Wstrict-prototypes
CFLAGS      ?= $(OPT)
MM3_CFLAGS   = $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -fno-semantic-interposition -D_GNU_SOURCE
# The libraries call their own public functions directly, not through the
# PLT: nobody may interpose mm3_file_lock under mm3_seg_push.
SO_LDFLAGS   = -Wl,-Bsymbolic-functions
LIBFLAG     ?= -shared
LDLIBS      ?= -lpthread
B           ?= build

CORE_SRC  := $(sort $(wildcard src/mm3_*.c))
LUA_SRC   := $(sort $(wildcard src/lmm3*.c))
CORE_OBJ  := $(CORE_SRC:src/%.c=$(B)/obj/%.o)
LUA_OBJ   := $(LUA_SRC:src/%.c=$(B)/obj/%.o)
HDRS      := $(wildcard src/*.h)
CTEST_SRC := $(sort $(wildcard spec/c/test_*.c))
CTESTS    := $(CTEST_SRC:spec/c/%.c=$(B)/tests/%)

.PHONY: all deps deps-test demo demo-embed valgrind test lint sanitize bench install uninstall clean torture fuzz docs

all: $(B)/libmemmap3.a $(B)/libmemmap3.so $(B)/memmap3/core.so $(B)/libmemmap3_lua.a

deps:
	@tools/deps.sh build

$(B)/obj/%.o: src/%.c $(HDRS) | $(B)/obj
	$(CC) $(MM3_CFLAGS) -I$(LUA_INCDIR) -c $< -o $@

$(B)/obj $(B)/tests $(B)/memmap3:
	@mkdir -p $@

$(B)/libmemmap3.a: $(CORE_OBJ)
	rm -f $@ && ar rcs $@ $^

# For C programs that embed Lua: the binding (luaopen_memmap3_core, mm3lua_*)
# and the core in one archive, since the binding calls core functions that
# libmemmap3.so does not export. Link it instead of libmemmap3 (pkg-config
# memmap3-lua), never with it.
$(B)/libmemmap3_lua.a: $(CORE_OBJ) $(LUA_OBJ)
	rm -f $@ && ar rcs $@ $^

# The shared library's ABI version is its SONAME: programs linked with
# -lmemmap3 load libmemmap3.so.0, installed beside the full version's file.
SOVERSION := 0
SOFULL    := 0.1.0
$(B)/libmemmap3.so: $(CORE_OBJ)
	$(CC) $(LIBFLAG) $(SO_LDFLAGS) -Wl,-soname,libmemmap3.so.$(SOVERSION) -o $@ $^ $(LDLIBS)

$(B)/memmap3/core.so: $(CORE_OBJ) $(LUA_OBJ) | $(B)/memmap3
	$(CC) $(LIBFLAG) $(SO_LDFLAGS) -o $@ $^ $(LDLIBS)

# C unit tests link the static core only: they prove it needs no Lua.
$(B)/tests/%: spec/c/%.c spec/c/mm3_test.h spec/c/mm3_fixture.h $(B)/libmemmap3.a | $(B)/tests
	$(CC) $(WARN) $(CFLAGS) -D_GNU_SOURCE -Isrc -o $@ $< $(B)/libmemmap3.a $(LDLIBS)

demo:
	@tools/deps.sh demo
	@$(MAKE) --no-print-directory all
	@LUA_PATH="lua/?.lua;lua/?/init.lua;examples/?.lua;;" LUA_CPATH="$(B)/?.so;;" $(LUA) examples/demo.lua

# A C host that embeds Lua: examples/embed.c with a header generated from
# examples/embed_save.lua by `memmap3 cheader`.
$(B)/gen/embed_save.h: examples/embed_save.lua lua/memmap3/cheader.lua lua/memmap3/schema.lua $(B)/memmap3/core.so
	@mkdir -p $(B)/gen
	LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$(B)/?.so;;" $(LUA) bin/memmap3 cheader examples/embed_save.lua Save -o $@

$(B)/embed: examples/embed.c $(B)/gen/embed_save.h $(B)/libmemmap3_lua.a
	$(CC) $(WARN) $(CFLAGS) -D_GNU_SOURCE -Isrc -I$(LUA_INCDIR) -I$(B)/gen -o $@ examples/embed.c \
	  $(B)/libmemmap3_lua.a -llua$(LUA_VERSION) -lm -ldl -lpthread

demo-embed:
	@tools/deps.sh demo
	@$(MAKE) --no-print-directory all $(B)/embed
	@$(B)/embed $(B)/embed_save.mm3

test:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory all $(CTESTS)
	@LUA="$(LUA)" BUSTED="$(BUSTED)" B="$(B)" tools/run-tests.sh $(CTESTS)

lint:
	@tools/deps.sh test
	$(MAKE) --no-print-directory B=$(B)/lint CFLAGS="$(OPT) -Werror" all
	$(LUACHECK) lua spec bench examples tools bin/memmap3

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer. The
# lua5.4 binary is not instrumented, so the runtime is preloaded for it.
SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
sanitize:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory B=$(B)/san CFLAGS="$(SAN_FLAGS)" LDLIBS="-lpthread -fsanitize=address,undefined" all
	@$(MAKE) --no-print-directory B=$(B)/san CFLAGS="$(SAN_FLAGS)" LDLIBS="-lpthread -fsanitize=address,undefined" \
	  $(CTEST_SRC:spec/c/%.c=$(B)/san/tests/%)
	@ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  MM3_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	  LUA="$(LUA)" BUSTED="$(BUSTED)" B="$(B)/san" tools/run-tests.sh $(CTEST_SRC:spec/c/%.c=$(B)/san/tests/%)

$(B)/bench/floor.so: bench/floor.c
	@mkdir -p $(B)/bench
	$(CC) $(WARN) -O2 -fPIC -I$(LUA_INCDIR) $(LIBFLAG) -o $@ $< -lpthread

$(B)/bench/c_map_bench: bench/c_map_bench.c $(B)/libmemmap3.a
	@mkdir -p $(B)/bench
	$(CC) $(WARN) -O2 -D_GNU_SOURCE -Isrc -o $@ $< $(B)/libmemmap3.a -llmdb $(LDLIBS)

# Crash torture, long run: 1000 kill -9 at random instants, every
# acknowledged operation checked (CI runs 50 kills in spec/torture_spec.lua).
torture:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory all
	@MM3_BUILD="$(B)" $(LUA) tools/torture.lua $${KILLS:-1000} $$(date +%s)

# libFuzzer on the file reader (spec/fuzz/): at least 10 million executions
# with AddressSanitizer and UBSan (RUNS=, JOBS=); CI runs `spec/fuzz/run.sh short`.
fuzz:
	@tools/deps.sh fuzz
	@tools/deps.sh demo
	@spec/fuzz/run.sh long

# The whole suite with the C tests and the busted process under valgrind
# (slow: on demand, not in CI's default run).
valgrind:
	@tools/deps.sh test
	@$(MAKE) --no-print-directory all $(CTESTS)
	@MM3_VALGRIND=1 LUA="$(LUA)" BUSTED="$(BUSTED)" B="$(B)" tools/run-tests.sh $(CTESTS)

bench:
	@tools/deps.sh bench
	@$(MAKE) --no-print-directory all $(B)/bench/floor.so $(B)/bench/c_map_bench
	@for f in bench/*_bench.lua; do echo "== $$f"; \
	  LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;;" LUA_CPATH="$(B)/?.so;$(B)/bench/?.so;;" $(LUA) $$f || exit 1; done
	@echo "== bench/c_map_bench.c" && $(B)/bench/c_map_bench

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) $(DESTDIR)$(LUA_LIBDIR)/memmap3 \
	  $(DESTDIR)$(LUA_SHAREDIR)/memmap3 $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 $(B)/libmemmap3.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(B)/libmemmap3.so $(DESTDIR)$(LIBDIR)/libmemmap3.so.$(SOFULL)
	ln -sf libmemmap3.so.$(SOFULL) $(DESTDIR)$(LIBDIR)/libmemmap3.so.$(SOVERSION)
	ln -sf libmemmap3.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libmemmap3.so
	install -m 644 $(B)/libmemmap3_lua.a $(DESTDIR)$(LIBDIR)/
	install -m 644 src/memmap3.h src/memmap3_lua.h $(DESTDIR)$(INCDIR)/
	install -m 755 $(B)/memmap3/core.so $(DESTDIR)$(LUA_LIBDIR)/memmap3/
	install -m 644 lua/memmap3/*.lua $(DESTDIR)$(LUA_SHAREDIR)/memmap3/
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCDIR@|$(INCDIR)|; s|@VERSION@|0.1.0|' \
	  tools/memmap3.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/memmap3.pc
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCDIR@|$(INCDIR)|; s|@VERSION@|0.1.0|' \
	  -e 's|@LUA_SHAREDIR@|$(LUA_SHAREDIR)|; s|@LUA_LIBDIR@|$(LUA_LIBDIR)|; s|@LUA_VERSION@|$(LUA_VERSION)|' \
	  tools/memmap3-lua.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/memmap3-lua.pc
	@if [ -f bin/memmap3 ]; then install -d $(DESTDIR)$(BINDIR) && \
	  sed -e 's|^-- @PATHS@$$|package.path = "$(LUA_SHAREDIR)/?.lua;$(LUA_SHAREDIR)/?/init.lua;" .. package.path; package.cpath = "$(LUA_LIBDIR)/?.so;" .. package.cpath|' \
	  bin/memmap3 > $(DESTDIR)$(BINDIR)/memmap3 && chmod 755 $(DESTDIR)$(BINDIR)/memmap3; fi

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libmemmap3.a $(DESTDIR)$(LIBDIR)/libmemmap3.so $(DESTDIR)$(LIBDIR)/libmemmap3_lua.a \
	  $(DESTDIR)$(LIBDIR)/libmemmap3.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libmemmap3.so.$(SOFULL)
	rm -f $(DESTDIR)$(INCDIR)/memmap3.h $(DESTDIR)$(INCDIR)/memmap3_lua.h
	rm -rf $(DESTDIR)$(LUA_LIBDIR)/memmap3 $(DESTDIR)$(LUA_SHAREDIR)/memmap3
	rm -f $(DESTDIR)$(PKGCONFIGDIR)/memmap3.pc $(DESTDIR)$(PKGCONFIGDIR)/memmap3-lua.pc $(DESTDIR)$(BINDIR)/memmap3

# HTML of the Lua API (config.ld) in $(B)/docs: Markdown where lua-markdown is
# installed, plain text otherwise; any LDoc warning fails the target.
LDOC ?= ldoc
docs:
	@tools/deps.sh docs
	$(LDOC) --fatalwarnings -d $(B)/docs .

clean:
	rm -rf $(B)
