# ngx_rpc_module: build against Debian's nginx-dev, out of tree.
#   make            build build/ngx_rpc_module.so
#   make run        install what the demo needs, build, start the quickstart gateway
#   make test       install packages, build, run the test suite
#   make test-valgrind / make test-asan   the suite under valgrind / ASan

SHELL := /bin/bash
NGX_SRC ?= /usr/share/nginx/src
TOP := $(CURDIR)
BUILD ?= $(TOP)/build
SOURCES := config $(wildcard ngx_rpc_module/*.c ngx_rpc_module/*.h)
CFLAGS_EXTRA ?=
LDFLAGS_EXTRA ?=

.PHONY: all deps deps-demo run stop test test-valgrind test-asan bench clean

all: $(BUILD)/ngx_rpc_module.so

$(BUILD)/Makefile: config
	@test -d $(NGX_SRC) || { echo "nginx-dev is missing: run 'make deps'"; exit 1; }
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

test: deps all
	prove -r t/

test-valgrind: deps all
	TEST_NGINX_USE_VALGRIND=1 prove -r t/

test-asan: deps
	$(MAKE) BUILD=$(TOP)/build-asan CFLAGS_EXTRA="-fsanitize=address,undefined -fno-omit-frame-pointer" LDFLAGS_EXTRA="-fsanitize=address,undefined" all
	TEST_NGINX_USE_ASAN=1 TEST_NGINX_MODULE=$(TOP)/build-asan/ngx_rpc_module.so prove -r t/

bench: deps all
	./bench/run

clean:
	rm -rf build build-asan build.configure.log build-asan.configure.log
