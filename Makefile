# nvring — one non-recursive Makefile. Every output goes under build/.
#
#   make            library (static + shared), the nvring CLI, examples, tests
#   make test       unit tests (plain, valgrind, ASan+UBSan) + the VM suite
#   make demo       boot QEMU's emulated NVMe controller and run the main job
#   make asan       ASan + UBSan build of everything, then the unit tests
#   make deps       install the Debian packages the build and the VM need
#   make fuzz       the libFuzzer targets (tests/fuzz/), FUZZ_SECONDS each (300)
#
# Sources are found by folder, so adding a .c file needs no edit here.

BUILD    ?= build
CC       ?= cc
CSTD     := -std=gnu11
WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
OPT      ?= -O2 -g
CPPFLAGS += -Iinclude -I. -D_GNU_SOURCE
CFLAGS   += $(CSTD) $(WARN) $(OPT) -fPIC -fvisibility=hidden -MMD -MP $(EXTRA_CFLAGS)
LDFLAGS  += $(EXTRA_LDFLAGS)
LDLIBS   += -lpthread

LIB_SRCS   := $(wildcard pci/*.c driver/*.c abi/*.c)
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
TOOL_SRCS  := $(wildcard tools/*.c)
TOOL_OBJS  := $(TOOL_SRCS:%.c=$(BUILD)/obj/%.o)
EX_SRCS    := $(wildcard examples/*.c)
EX_BINS    := $(EX_SRCS:examples/%.c=$(BUILD)/examples/%)
MODEL_SRCS := $(wildcard tests/model/*.c)
MODEL_OBJS := $(MODEL_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
VM_SRCS    := $(wildcard tests/vm/*.c)
VM_BINS    := $(VM_SRCS:tests/vm/%.c=$(BUILD)/tests/vm/%)
SHIM_SRCS  := $(wildcard shim/*.c)
SHIM_OBJS  := $(SHIM_SRCS:%.c=$(BUILD)/obj/%.o)
SHIMT_SRCS := $(wildcard tests/shim/*.c)
SHIMT_BINS := $(SHIMT_SRCS:tests/shim/%.c=$(BUILD)/tests/shim/%)
STATIC_SRCS := $(wildcard shim/static/*.c)
STATIC_LOADER := $(if $(STATIC_SRCS),$(BUILD)/lib/nvring-static-loader)
SHIMS_BINS := $(SHIMT_SRCS:tests/shim/%.c=$(BUILD)/tests/shim-static/%)
STATIC_PROBES := $(BUILD)/tests/unit/static_probe $(BUILD)/tests/unit/static_probe_pie \
  $(BUILD)/tests/unit/static_probe_stripped $(BUILD)/tests/unit/static_refuse
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:bench/%.c=$(BUILD)/bench/%)

STATIC_LIB := $(BUILD)/lib/libnvring.a
SHARED_LIB := $(BUILD)/lib/libnvring.so
CLI        := $(BUILD)/bin/nvring
PRELOAD    := $(if $(SHIM_SRCS),$(BUILD)/lib/libnvring-preload.so)

.PHONY: all test unit vm demo asan deps clean bench soak fuzz fuzz-build
all: $(STATIC_LIB) $(SHARED_LIB) $(CLI) $(EX_BINS) $(UNIT_BINS) $(VM_BINS) $(PRELOAD) $(SHIMT_BINS) \
     $(STATIC_LOADER) $(SHIMS_BINS) $(STATIC_PROBES)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(STATIC_LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(SHARED_LIB): $(LIB_OBJS) nvring.map
	@mkdir -p $(@D)
	$(CC) -shared -Wl,--version-script=nvring.map -Wl,-soname,libnvring.so $(LDFLAGS) -o $@ $(LIB_OBJS) $(LDLIBS)

# The LD_PRELOAD shim (shim/): the library linked in, only the interposed
# symbols exported (shim/preload.map).
$(BUILD)/lib/libnvring-preload.so: $(SHIM_OBJS) $(LIB_OBJS) shim/preload.map
	@mkdir -p $(@D)
	$(CC) -shared -Wl,--version-script=shim/preload.map -Wl,-soname,libnvring-preload.so \
	  -Wl,-z,now $(LDFLAGS) -o $@ $(SHIM_OBJS) $(LIB_OBJS) -ldl $(LDLIBS)

# Unmodified liburing programs (tests/shim/): built against Debian's
# liburing.so.2 exactly as a user would, run on the kernel and through the shim.
$(BUILD)/tests/shim/%: tests/shim/%.c
	@mkdir -p $(@D) $(BUILD)/obj/tests/shim
	$(CC) -std=gnu11 $(WARN) -O2 -g -D_GNU_SOURCE -MMD -MP -MF $(BUILD)/obj/tests/shim/$*.d \
	  $(LDFLAGS) -o $@ $< -luring $(LDLIBS)

# nvring-static-loader (shim/static/): a freestanding static executable, no
# libc (the static program it loads brings its own), linked far above where
# ET_EXEC programs live; never built with the sanitizers (they need a libc).
# -mgeneral-regs-only: its code keeps off the program's vector state.
STATIC_CFLAGS := $(CSTD) $(WARN) -O2 -g -ffreestanding -fno-builtin -fno-stack-protector \
  -fpie -mgeneral-regs-only -fcf-protection=none -fno-asynchronous-unwind-tables -MMD -MP
$(BUILD)/obj/static-loader/%.o: shim/static/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(STATIC_CFLAGS) -c $< -o $@
$(BUILD)/lib/nvring-static-loader: $(STATIC_SRCS:shim/static/%.c=$(BUILD)/obj/static-loader/%.o)
	@mkdir -p $(@D)
	$(CC) -nostdlib -static -no-pie -Wl,-Ttext-segment=0x7e0000000000 -Wl,--build-id=none \
	  -o $@ $^

# The same programs linked statically (liburing.a, glibc's libc.a), for
# nvring-static-loader (tests/vm/shim_static.sh).
$(BUILD)/tests/shim-static/%: tests/shim/%.c
	@mkdir -p $(@D) $(BUILD)/obj/tests/shim-static
	$(CC) -std=gnu11 $(WARN) -O2 -g -D_GNU_SOURCE -MMD -MP -MF $(BUILD)/obj/tests/shim-static/$*.d \
	  -static -o $@ $< -luring $(LDLIBS)

# The loader's unit test: the static probe it runs, and the site finder
# compiled for the host.
$(BUILD)/tests/unit/static_probe: tests/unit/static/probe.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(WARN) -O2 -g -D_GNU_SOURCE -static -o $@ $< -luring
$(BUILD)/tests/unit/static_probe_pie: tests/unit/static/probe.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 $(WARN) -O2 -g -D_GNU_SOURCE -static-pie -fPIE -o $@ $< -luring
$(BUILD)/tests/unit/static_probe_stripped: $(BUILD)/tests/unit/static_probe
	strip -o $@ $<
$(BUILD)/tests/unit/static_refuse: tests/unit/static/refuse.S
	@mkdir -p $(@D)
	$(CC) -nostdlib -static -no-pie -o $@ $<
$(BUILD)/tests/unit/test_static_loader: $(BUILD)/obj/tests/unit/test_static_loader.o \
  $(BUILD)/obj/shim/static/decode.o $(BUILD)/obj/shim/static/elfscan.o \
  | $(STATIC_PROBES) $(STATIC_LOADER) $(SHIMS_BINS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) -lcmocka $(LDLIBS)

$(CLI): $(TOOL_OBJS) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJS) $(STATIC_LIB) $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(STATIC_LIB) $(LDLIBS)

# Unit tests link the production library plus the software controller model.
$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(MODEL_OBJS) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(MODEL_OBJS) $(STATIC_LIB) -lcmocka $(LDLIBS)

# The harness test runs qemu/cmocka-count from this source tree.
$(BUILD)/obj/tests/unit/test_harness_count.o: CPPFLAGS += -DNVRING_SRCDIR='"$(CURDIR)"'

# Shim unit tests link the shim's objects too: the test program is then
# interposed the way a preloaded program is.
$(BUILD)/tests/unit/test_shim_%: $(BUILD)/obj/tests/unit/test_shim_%.o $(SHIM_OBJS) $(MODEL_OBJS) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(SHIM_OBJS) $(MODEL_OBJS) $(STATIC_LIB) -lcmocka -luring -ldl $(LDLIBS)
# The shim's patch/trap tests and bench/shim_cost link the shim's inline
# syscall layer (not the rest of shim/: each defines its own shim_dispatch).
SHIM_TRAP_OBJS := $(addprefix $(BUILD)/obj/shim/,raw.o patch.o stub.o trap.o)
SHIM_TRAP_BINS := $(BUILD)/tests/unit/test_shim_patch $(BUILD)/tests/unit/test_shim_trap
$(SHIM_TRAP_BINS): $(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(SHIM_TRAP_OBJS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)
$(BUILD)/bench/shim_cost: $(BUILD)/obj/bench/shim_cost.o $(SHIM_TRAP_OBJS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# VM tests run in the guest against QEMU's controller; the harness carries
# their shared libraries along.
$(BUILD)/tests/vm/%: $(BUILD)/obj/tests/vm/%.o $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(STATIC_LIB) -lcmocka $(LDLIBS)

# Benchmarks run in the guest like the VM tests (bench/run boots it).
$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $< $(STATIC_LIB) -lcmocka $(LDLIBS)

# libFuzzer targets (tests/fuzz/): Debian's clang, the library and the
# software model compiled in with ASan+UBSan and fuzzer coverage; outputs
# under $(BUILD)/fuzz. Not part of `all` (gcc builds that); `make test`
# builds them and tests/run-all runs each for a bounded time.
FUZZ_CC    ?= clang
FUZZ_BUILD := $(BUILD)/fuzz
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS  := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := $(CSTD) $(WARN) -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP
FUZZ_OBJS  := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o) $(MODEL_SRCS:%.c=$(FUZZ_BUILD)/obj/%.o)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_BINS): $(FUZZ_BUILD)/%: $(FUZZ_BUILD)/obj/tests/fuzz/%.o $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

# Each target for FUZZ_SECONDS (default 300) from its committed corpus;
# new inputs go to $(FUZZ_BUILD)/corpus, findings to $(FUZZ_BUILD)/findings.
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_KEEP=1 FUZZ_SECONDS=$${FUZZ_SECONDS:-300} tests/fuzz/run $(FUZZ_BUILD)

deps:
	@qemu/deps

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@bench/run $(BUILD)

# difftest with fresh random seeds in the VM (NVRING_SOAK_SECONDS, 600).
soak: deps
	@$(MAKE) --no-print-directory all
	@tests/run-soak $(BUILD)

unit: deps
	@$(MAKE) --no-print-directory all
	@tests/run-unit $(BUILD)

vm: deps
	@$(MAKE) --no-print-directory all
	@tests/run-vm $(BUILD)

ASAN_FLAGS := BUILD=build/asan OPT="-O1 -g" \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined"

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory $(ASAN_FLAGS) all
	@$(MAKE) --no-print-directory fuzz-build
	@tests/run-all $(BUILD) build/asan

demo: deps
	@$(MAKE) --no-print-directory all
	@qemu/demo

asan: deps
	@$(MAKE) --no-print-directory $(ASAN_FLAGS) all
	@NVRING_SUITE=asan tests/run-unit build/asan

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
