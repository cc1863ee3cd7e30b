# ngx_rpc_module: build against Debian's nginx-dev, out of tree.
#   make            build build/ngx_rpc_module.so
#   make run        install what the demo needs, build, start the quickstart gateway
#   make test       install packages, build, fuzz briefly, run the test suite
#   make test-valgrind / make test-asan   the suite under valgrind / ASan
#   make fuzz       libFuzzer on the request and the reply parser, the
#                   WebSocket frame reader and the 101 handshake check,
#                   FUZZ_TIME seconds each (FUZZ_TARGETS=frame: one of
#                   them); make fuzz-ci: the two parser targets,
#                   FUZZ_CI_TIME seconds each
#   make bench-parse   parse cost per byte (bench/parse_bench.c)
#   make install    the module, its load_module snippet mod-rpc.conf and the
#                   link 50-mod-rpc.conf, in Debian's layout (DESTDIR,
#                   PREFIX); make uninstall removes those three
#   make deb        build-deb/libnginx-mod-rpc_VERSION_ARCH.deb with
#                   debhelper (VERSION from debian/changelog), then lintian
#   make test-deb   installs that package on this machine, serves a call
#                   through the system nginx, purges it (t/pkg/deb.sh)
#   make test-static   nginx from Debian's source with the module built in,
#                   and t/001, t/004 and t/007 against it (t/pkg/static.sh)

SHELL := /bin/bash
NGX_SRC ?= /usr/share/nginx/src
TOP := $(CURDIR)
BUILD ?= $(TOP)/build
SOURCES := config $(wildcard ngx_rpc_module/*.c ngx_rpc_module/*.h)
CFLAGS_EXTRA ?=
LDFLAGS_EXTRA ?=

.PHONY: all deps deps-demo run stop test test-valgrind test-asan bench clean \
        fuzz-deps fuzz-build fuzz fuzz-ci bench-parse \
        deps-pkg install uninstall deb test-deb test-static clean-pkg

all: $(BUILD)/ngx_rpc_module.so

$(BUILD)/Makefile: config
	@test -d $(NGX_SRC) || { echo "nginx-dev is missing: run 'make deps'"; exit 1; }
	@# nginx's configure turns ".S" in a path into ".o" (it takes it for an
	@# assembler source's suffix), and the build then looks for files that
	@# are not there
	@case "$(TOP) $(BUILD)" in *.S*) echo "nginx's configure cannot build in" \
	    "a path with \".S\" in it: $(BUILD) (move the clone elsewhere)"; \
	    exit 1;; esac
	cd $(NGX_SRC) && . ./conf_flags && ./configure \
	    --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC $$(dpkg-buildflags --get CPPFLAGS) $(CFLAGS_EXTRA)" \
	    --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC $(LDFLAGS_EXTRA)" \
	    "$${NGX_CONF_FLAGS[@]}" --add-dynamic-module=$(TOP) \
	    --builddir=$(BUILD) > $(BUILD).configure.log 2>&1 \
	    || { tail -20 $(BUILD).configure.log; exit 1; }

$(BUILD)/ngx_rpc_module.so: $(BUILD)/Makefile $(SOURCES)
	$(MAKE) -s -f $(BUILD)/Makefile -C $(NGX_SRC) modules

deps:
	@./t/deps.sh

deps-demo:
	@./t/deps.sh demo

run: deps-demo all
	@./conf-examples/run-quickstart.sh

stop:
	@./conf-examples/run-quickstart.sh stop

# the fuzz targets run first (FUZZ_CI_TIME seconds each), so that prove's
# summary closes the output
test: deps all
	@$(MAKE) -s fuzz-ci
	prove -r t/

test-valgrind: deps all
	TEST_NGINX_USE_VALGRIND=1 prove -r t/

test-asan: deps
	$(MAKE) BUILD=$(TOP)/build-asan CFLAGS_EXTRA="-fsanitize=address,undefined -fno-omit-frame-pointer" LDFLAGS_EXTRA="-fsanitize=address,undefined" all
	TEST_NGINX_USE_ASAN=1 TEST_NGINX_MODULE=$(TOP)/build-asan/ngx_rpc_module.so prove -r t/

bench: deps all
	./bench/run

# --- install, the Debian package, the static build.  PREFIX and DESTDIR as
# usual; /etc stays /etc (SYSCONFDIR).  Debian's nginx finds "modules/"
# under its prefix (/usr/share/nginx/modules -> /usr/lib/nginx/modules), so
# the snippet names the module so there, and by its full path elsewhere.

PREFIX ?= /usr
SYSCONFDIR ?= /etc
NGX_MODULES_DIR ?= $(PREFIX)/lib/nginx/modules
NGX_MODCONF_DIR ?= $(PREFIX)/share/nginx/modules-available
NGX_ENABLED_DIR ?= $(SYSCONFDIR)/nginx/modules-enabled
NGX_LOAD = $(if $(filter /usr/lib/nginx/modules,$(NGX_MODULES_DIR)),modules,$(NGX_MODULES_DIR))/ngx_rpc_module.so
DEB_BUILD := $(TOP)/build-deb
DEB_VERSION = $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' debian/changelog)
DEB_NAME = libnginx-mod-rpc_$(DEB_VERSION)_$(shell dpkg --print-architecture).deb
# the package's files are dpkg's: make install and uninstall leave them be
NOT_PKG = if [ -z "$(DESTDIR)" ] && dpkg-query -W -f='$${Status}' \
              libnginx-mod-rpc 2>/dev/null | grep -q 'ok installed'; then \
              echo "libnginx-mod-rpc is installed: apt-get remove it first" >&2; \
              exit 1; fi

deps-pkg:
	@./t/deps.sh pkg

install: all
	@$(NOT_PKG)
	install -d $(DESTDIR)$(NGX_MODULES_DIR) $(DESTDIR)$(NGX_MODCONF_DIR) \
	    $(DESTDIR)$(NGX_ENABLED_DIR)
	install -m 644 $(BUILD)/ngx_rpc_module.so $(DESTDIR)$(NGX_MODULES_DIR)/
	echo 'load_module $(NGX_LOAD);' > $(DESTDIR)$(NGX_MODCONF_DIR)/mod-rpc.conf
	chmod 644 $(DESTDIR)$(NGX_MODCONF_DIR)/mod-rpc.conf
	ln -sfn $(NGX_MODCONF_DIR)/mod-rpc.conf \
	    $(DESTDIR)$(NGX_ENABLED_DIR)/50-mod-rpc.conf

uninstall:
	@$(NOT_PKG)
	rm -f $(DESTDIR)$(NGX_ENABLED_DIR)/50-mod-rpc.conf \
	    $(DESTDIR)$(NGX_MODCONF_DIR)/mod-rpc.conf \
	    $(DESTDIR)$(NGX_MODULES_DIR)/ngx_rpc_module.so

# dpkg-buildpackage in a copy of what the package is made of, so that
# debhelper's files stay out of the tree; its log in build-deb/build.log
deb: deps-pkg
	@rm -rf $(DEB_BUILD) && mkdir -p $(DEB_BUILD)/src
	@cp -a config ngx_rpc_module conf-examples debian README.md $(DEB_BUILD)/src/
	@echo "dpkg-buildpackage: log in $(DEB_BUILD)/build.log"
	@cd $(DEB_BUILD)/src && dpkg-buildpackage -b -us -uc -j2 \
	    > $(DEB_BUILD)/build.log 2>&1 || { tail -30 $(DEB_BUILD)/build.log; exit 1; }
	lintian --fail-on error --info $(DEB_BUILD)/*.changes
	@dpkg-deb -I $(DEB_BUILD)/$(DEB_NAME) | sed -n 's/^ \(Package\|Version\|Depends\):/  \1:/p'
	@echo "built $(DEB_BUILD)/$(DEB_NAME)"

test-deb: deb
	./t/pkg/deb.sh $(DEB_BUILD)/$(DEB_NAME)

test-static: deps
	./t/pkg/static.sh $(TOP)/build-static

clean: clean-pkg

clean-pkg:
	rm -rf build-deb build-static

clean:
	rm -rf build build-asan build.configure.log build-asan.configure.log

# --- fuzzing and parse benchmark: ngx_rpc_parse.c (and ngx_rpc_frame.c,
# the WebSocket frame reader) linked with nginx's own
# core objects (Debian's nginx source, built with clang: ngx-fuzz with
# ASan, UBSan and libFuzzer's coverage, ngx-bench with -O2), yajl from its
# source (fuzz) or the system's libyajl (bench), and ngx_rpc_util.c, which
# needs no http; all of it under build-fuzz/, out of the tree.
# FUZZ_PARSE names another directory with ngx_rpc_parse.c, ngx_rpc_frame.c
# and ngx_rpc.h to fuzz or time, built under build-fuzz/$(FUZZ_TAG).
# fuzz_handshake: ngx_rpc_frame.c's check of a server's 101 (the upstream
# WebSocket client's), linked as fuzz_frame is.

FZ := $(TOP)/build-fuzz
FZ_SRC := $(FZ)/src
FUZZ_PARSE ?= $(TOP)/ngx_rpc_module
FUZZ_TAG ?= tree
FZ_OUT := $(FZ)/$(FUZZ_TAG)
FUZZ_TIME ?= 300
FUZZ_CI_TIME ?= 30
FUZZ_JOBS ?= 1
# make fuzz runs these; make fuzz-ci (in make test) only the parser's
FUZZ_TARGETS ?= request reply frame handshake
FUZZ_CI_TARGETS := request reply
BENCH_PARSE_LIMIT ?= 60

FZ_WARN := -Wall -Wextra -Wpointer-arith -Wconditional-uninitialized \
           -Wno-unused-parameter -Werror
FZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all \
          -fno-omit-frame-pointer
# long tokens are held from this length on: small, so that small inputs
# take that path too
FUZZ_HOLD ?= 8
FZ_CFLAGS_fuzz := -g -O1 $(FZ_SAN) -fsanitize=fuzzer-no-link
FZ_LDFLAGS_fuzz := $(FZ_SAN) -fsanitize=fuzzer-no-link
FZ_CFLAGS_bench := -g -O2
FZ_LDFLAGS_bench :=
FZ_INCS = -I $(FUZZ_PARSE) -I $(FZ_SRC)/nginx/src/core \
          -I $(FZ_SRC)/nginx/src/event -I $(FZ_SRC)/nginx/src/event/modules \
          -I $(FZ_SRC)/nginx/src/os/unix -I $(FZ_SRC)/nginx/src/http \
          -I $(FZ_SRC)/nginx/src/http/modules -I $(FZ)/ngx-$(1)
FZ_PARSE_SRC := $(FUZZ_PARSE)/ngx_rpc_parse.c $(FUZZ_PARSE)/ngx_rpc.h
FZ_FRAME_SRC := $(FUZZ_PARSE)/ngx_rpc_frame.c $(FUZZ_PARSE)/ngx_rpc.h
FZ_YAJL := yajl yajl_alloc yajl_buf yajl_encode yajl_lex yajl_parser

.PRECIOUS: $(FZ)/ngx-%/libngx.a $(FZ_OUT)/fuzz/%.o $(FZ_OUT)/bench/%.o

fuzz-deps: $(FZ_SRC)/.done

$(FZ_SRC)/.done: fuzz/deps.sh
	@./fuzz/deps.sh $(FZ_SRC)

# nginx's core, event and os objects (no http), main() renamed in nginx.o

$(FZ)/ngx-%/libngx.a: $(FZ_SRC)/.done
	@echo "building nginx core objects ($*)"
	@cd $(FZ_SRC)/nginx && ./configure --with-cc=clang --with-debug \
	    --without-http --without-pcre --builddir=$(FZ)/ngx-$* \
	    --with-cc-opt="$(FZ_CFLAGS_$*)" --with-ld-opt="$(FZ_LDFLAGS_$*)" \
	    > $(FZ)/ngx-$*.configure.log 2>&1 \
	    || { tail -20 $(FZ)/ngx-$*.configure.log; exit 1; }
	@nice $(MAKE) -s -f $(FZ)/ngx-$*/Makefile -C $(FZ_SRC)/nginx binary \
	    > $(FZ)/ngx-$*.make.log 2>&1 \
	    || { tail -20 $(FZ)/ngx-$*.make.log; exit 1; }
	@objcopy --redefine-sym main=ngx_rpc_fuzz_nginx_main \
	    $(FZ)/ngx-$*/src/core/nginx.o $(FZ)/ngx-$*/nginx-nomain.o
	@rm -f $@ && ar rcs $@ $$(find $(FZ)/ngx-$* -name '*.o' ! -name nginx.o)

$(FZ)/yajl-fuzz/libyajl.a: $(FZ_SRC)/.done
	@mkdir -p $(@D)
	cd $(@D) && for f in $(FZ_YAJL); do \
	    clang -c $(FZ_CFLAGS_fuzz) -I /usr/include \
	        $(FZ_SRC)/yajl/src/$$f.c -o $$f.o || exit 1; done
	@rm -f $@ && ar rcs $@ $(addprefix $(@D)/,$(addsuffix .o,$(FZ_YAJL)))

$(FZ_OUT)/fuzz/%.o: $(FZ)/ngx-fuzz/libngx.a $(FZ_PARSE_SRC) \
        fuzz/ngx_rpc_fuzz_parse.c ngx_rpc_module/ngx_rpc_util.c
	@mkdir -p $(@D)
	clang -c $(FZ_CFLAGS_fuzz) $(FZ_WARN) $(call FZ_INCS,fuzz) \
	    $(if $(filter reply,$*),-DNGX_RPC_FUZZ_REPLY=1) \
	    -DNGX_RPC_PARSE_HOLD=$(FUZZ_HOLD) \
	    $(if $(filter request reply,$*),fuzz/ngx_rpc_fuzz_parse.c, \
	        $(if $(filter util,$*),ngx_rpc_module/ngx_rpc_util.c, \
	            $(FUZZ_PARSE)/ngx_rpc_parse.c)) -o $@

$(FZ_OUT)/fuzz_%: $(FZ_OUT)/fuzz/%.o $(FZ_OUT)/fuzz/parse.o \
        $(FZ_OUT)/fuzz/util.o $(FZ)/yajl-fuzz/libyajl.a \
        $(FZ)/ngx-fuzz/libngx.a
	clang $(FZ_SAN) -fsanitize=fuzzer $^ -lpthread -lcrypt -o $@

# the frame reader and the handshake check: ngx_rpc_frame.c, no parser, no
# yajl (static pattern rules: before the parser's pattern ones)

FZ_FRAME_TARGETS := frame handshake

$(FZ_FRAME_TARGETS:%=$(FZ_OUT)/fuzz/%-target.o): $(FZ_OUT)/fuzz/%-target.o: \
        $(FZ)/ngx-fuzz/libngx.a $(FZ_FRAME_SRC) fuzz/ngx_rpc_fuzz_%.c
	@mkdir -p $(@D)
	clang -c $(FZ_CFLAGS_fuzz) $(FZ_WARN) $(call FZ_INCS,fuzz) \
	    fuzz/ngx_rpc_fuzz_$*.c -o $@

$(FZ_OUT)/fuzz/frame.o: $(FZ)/ngx-fuzz/libngx.a $(FZ_FRAME_SRC)
	@mkdir -p $(@D)
	clang -c $(FZ_CFLAGS_fuzz) $(FZ_WARN) $(call FZ_INCS,fuzz) \
	    $(FUZZ_PARSE)/ngx_rpc_frame.c -o $@

$(FZ_FRAME_TARGETS:%=$(FZ_OUT)/fuzz_%): $(FZ_OUT)/fuzz_%: \
        $(FZ_OUT)/fuzz/%-target.o $(FZ_OUT)/fuzz/frame.o \
        $(FZ_OUT)/fuzz/util.o $(FZ)/ngx-fuzz/libngx.a
	clang $(FZ_SAN) -fsanitize=fuzzer $^ -lpthread -lcrypt -o $@

$(FZ)/seeds/.done: fuzz/seeds.sh fuzz/frame-seeds.sh fuzz/handshake-seeds.sh \
        $(wildcard fuzz/corpus/* \
        t/corpora/JSONTestSuite/test_parsing/*)
	@./fuzz/seeds.sh $(FZ)/seeds
	@touch $@

fuzz-build: $(addprefix $(FZ_OUT)/fuzz_,$(FUZZ_TARGETS)) $(FZ)/seeds/.done

# a finding fails the target: the input is under build-fuzz/TAG/artifacts

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    ./fuzz/run.sh $(FZ_OUT)/fuzz_$$t $(FZ)/corpus/$$t $(FZ)/seeds/$$t \
	        $(FZ_OUT)/artifacts/$$t $(FUZZ_TIME) $(FUZZ_JOBS) \
	        fuzz/$$(case $$t in frame|handshake) echo $$t;; \
	                *) echo json;; esac).dict \
	        || exit 1; \
	done

fuzz-ci:
	@$(MAKE) -s fuzz FUZZ_TIME=$(FUZZ_CI_TIME) FUZZ_JOBS=1 \
	    FUZZ_TARGETS="$(FUZZ_CI_TARGETS)"

$(FZ_OUT)/bench/%.o: $(FZ)/ngx-bench/libngx.a $(FZ_PARSE_SRC) \
        bench/parse_bench.c ngx_rpc_module/ngx_rpc_util.c
	@mkdir -p $(@D)
	clang -c $(FZ_CFLAGS_bench) $(FZ_WARN) $(call FZ_INCS,bench) \
	    $(if $(filter main,$*),bench/parse_bench.c, \
	        $(if $(filter util,$*),ngx_rpc_module/ngx_rpc_util.c, \
	            $(FUZZ_PARSE)/ngx_rpc_parse.c)) -o $@

$(FZ_OUT)/parse_bench: $(FZ_OUT)/bench/main.o $(FZ_OUT)/bench/parse.o \
        $(FZ_OUT)/bench/util.o $(FZ)/ngx-bench/libngx.a
	clang $^ -lyajl -lpthread -lcrypt -o $@

bench-parse: $(FZ_OUT)/parse_bench
	nice $(FZ_OUT)/parse_bench $(BENCH_PARSE_LIMIT)
