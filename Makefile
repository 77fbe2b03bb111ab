# SPDX-License-Identifier: GPL-2.0
#
# Build, boot and test a Linux 6.12 kernel carrying our KSM.
#
#   make run              boot our kernel, show KSM saving memory
#   make test             every test, on our kernel and on 6.12's (the baseline)
#   make check            every test on one kernel (KERNEL=ours|baseline)
#   make shell            boot to an interactive shell in the guest
#   make kernel           just build
#   make bench            the same workloads on both kernels, ratios, a plot
#   make stress           a seeded randomized stress (debug kernel by default)
#   make lint             checkpatch, kernel-doc, W=1, sparse, htmldocs on our files
#   make series           the work as a patch series on 6.12 (build/series/out)
#   make series-verify    builds every prefix of the series, boots the last
#
# Variables: KERNEL=ours|baseline  DEBUG=1 (KASAN, lockdep, DEBUG_VM...)
#            ACCEL=tcg|kvm|auto     JOBS=N  TIMEOUT=seconds  MEM=2G  SMP=2
#            APPEND="kernel args"   DEMO="ksm_demo args"  BUILD=dir
#            REPEATS=5  BENCH_ARGS=-n,4,-m,128  BENCH_ICOUNT=0  BENCH_SMP=
#            BENCH_ONLY=mix,volatile,ksm_tests,churn
#            DURATION=300 SEED=n STRESS_OPS=all|crash|op,... STRESS_ARGS= (make stress)

KERNEL  ?= ours
# make stress: the debug kernel unless DEBUG=0; TIMEOUT covers DURATION
# plus boot and the final checks (kmemleak scans are slow under KASAN).
ifneq ($(filter stress,$(MAKECMDGOALS)),)
DEBUG   ?= 1
DURATION ?= 300
TIMEOUT ?= $(shell echo $$(( $(DURATION) + 1500 )))
endif
DEBUG   ?= 0
ACCEL   ?= tcg
BUILD   ?= $(CURDIR)/build
JOBS    ?= $(shell echo $$(( $$(nproc) + 1 )))
MEM     ?= 2G
SMP     ?= 2
APPEND  ?=
DEMO    ?=
TARBALL ?= /usr/src/linux-source-6.12.tar.xz

ifeq ($(filter $(KERNEL),ours baseline),)
$(error KERNEL must be ours or baseline, not '$(KERNEL)')
endif

VARIANT  := $(KERNEL)$(if $(filter 1,$(DEBUG)),-debug)
TIMEOUT  ?= $(if $(filter 1,$(DEBUG)),5400,1800)
PRISTINE := $(BUILD)/src/pristine
SRC      := $(if $(filter ours,$(KERNEL)),$(BUILD)/src/ours,$(PRISTINE))
OBJ      := $(BUILD)/obj/$(VARIANT)
# IMAGE: boot this bzImage as it is, building nothing (say, a kept copy
# of an older build); GUEST: where the guest's programs are built.
ifneq ($(IMAGE),)
BZIMAGE  := $(IMAGE)
KERNEL_DEP :=
else
BZIMAGE  := $(OBJ)/arch/x86/boot/bzImage
KERNEL_DEP := kernel
endif
GUEST    ?= $(BUILD)/guest
INITRD   := $(GUEST)/initramfs.cpio
HDR      := $(BUILD)/hdr
H        := $(CURDIR)/harness
FRAGS    := $(H)/config/ksm.config $(if $(filter ours,$(KERNEL)),$(H)/config/ours.config) \
	    $(if $(filter 1,$(DEBUG)),$(H)/config/debug.config)
STAMP    := $(shell date +%Y%m%d-%H%M%S)
LOGS     := $(BUILD)/logs/$(STAMP)-$(VARIANT)

# 6.12's ksm_tests race on the stock kernel (README, "Flaky baseline"):
# there they get bounded retries, recorded in the results.  Our engine
# converges within the two scans they wait for: one attempt.
ATTEMPTS ?= $(if $(filter baseline,$(KERNEL)),10,1)

export CCACHE_DIR ?= $(HOME)/.cache/ccache
KCC = $(shell command -v ccache >/dev/null 2>&1 && echo "ccache gcc" || echo gcc)
KMAKE = $(MAKE) -C $(SRC) O=$(OBJ) CC="$(KCC)" HOSTCC="$(KCC)" -j$(JOBS)

PACKAGES := linux-source-6.12 qemu-system-x86 gcc make flex bison bc \
	libelf-dev libssl-dev cpio busybox-static ccache libnuma-dev \
	python3 rsync xz-utils patch git gnuplot-nox ksmtuned procps stress-ng \
	sparse python3-sphinx python3-yaml

GUEST_RUN = python3 $(H)/scripts/guest.py --kernel $(BZIMAGE) \
	--initrd $(BOOT_INITRD) --label $(VARIANT) --accel $(ACCEL) \
	--smp $(SMP) --mem $(MEM) --timeout $(TIMEOUT)

.PHONY: all deps tree kernel initramfs check run shell exec test bench clean distclean \
	selftests help stress lint series series-verify
all: kernel initramfs

help:
	@sed -n '3,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

# --- packages --------------------------------------------------------------
deps:
	@missing=$$(for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q '^install ok installed' || echo $$p; done); \
	[ -z "$$missing" ] && exit 0; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "missing packages; run as root:"; \
		echo "  apt-get update && apt-get install -y $$missing"; \
		exit 1; \
	fi; \
	echo "  APT     $$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends $$missing >/dev/null

# --- source trees ------------------------------------------------------------
$(PRISTINE)/.unpacked: | deps
	@$(H)/scripts/unpack.sh $(TARBALL) $(PRISTINE)

tree: $(PRISTINE)/.unpacked
ifeq ($(KERNEL),ours)
	@$(H)/scripts/sync-tree.sh $(PRISTINE) $(SRC) $(CURDIR)
endif

# --- kernel ----------------------------------------------------------------
$(OBJ)/.config: $(FRAGS) $(H)/scripts/kconfig.sh $(wildcard patches/*) | tree
	@$(H)/scripts/kconfig.sh $(SRC) $(OBJ) $(FRAGS)

kernel: tree $(OBJ)/.config
	@$(KMAKE) -s bzImage
	@echo "  KERNEL  $(VARIANT): linux-$$(cat $(PRISTINE)/.unpacked), $(BZIMAGE)"

# --- guest userland ------------------------------------------------------------
$(HDR)/.stamp: $(PRISTINE)/.unpacked
	@$(MAKE) -s -C $(PRISTINE) O=$(BUILD)/obj/headers headers_install \
		INSTALL_HDR_PATH=$(HDR) >/dev/null
	@touch $@

$(BUILD)/tools/gen_init_cpio: $(PRISTINE)/.unpacked
	@mkdir -p $(@D)
	@gcc -O2 -o $@ $(PRISTINE)/usr/gen_init_cpio.c

SELFTEST_DEPS := $(wildcard tools/testing/selftests/mm/*.[ch]) \
	$(wildcard $(H)/selftests-6.12/*.patch) $(wildcard $(H)/guest/*.[ch]) \
	$(H)/scripts/build-selftests.sh
$(GUEST)/tests/.stamp: $(SELFTEST_DEPS) $(HDR)/.stamp
	@$(H)/scripts/build-selftests.sh $(PRISTINE) $(HDR) $(GUEST)/tests $(CURDIR)
	@touch $@

selftests: $(GUEST)/tests/.stamp

$(INITRD): $(GUEST)/tests/.stamp $(H)/guest/init $(H)/scripts/mkinitramfs.sh \
		$(BUILD)/tools/gen_init_cpio $(wildcard $(H)/guest/clients/*)
	@$(H)/scripts/mkinitramfs.sh $@ $(GUEST)/tests $(CURDIR) \
		$(BUILD)/tools/gen_init_cpio

# The client tests (harness/guest/clients/) run Debian's KSM users: these
# host files ride at their own paths, with their libraries, in an appended
# archive (packed again when packages change); a test whose files are
# missing skips.
CLIENT_FILES := /usr/bin/qemu-system-x86_64 \
	/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so \
	/usr/share/seabios/bios-256k.bin /usr/share/qemu/kvmvapic.bin \
	/usr/sbin/ksmtuned /bin/bash /usr/bin/pgrep /usr/bin/ps /usr/bin/stress-ng
CLIENTS := $(GUEST)/clients.cpio
$(CLIENTS): $(wildcard $(CLIENT_FILES) /var/lib/dpkg/status) \
		$(H)/scripts/mkinitramfs.sh $(BUILD)/tools/gen_init_cpio
	@$(H)/scripts/mkinitramfs.sh --extra --optional $@ \
		$(BUILD)/tools/gen_init_cpio $(CLIENT_FILES)

# EXTRA_BINS: host programs (with their libraries) in one more archive.
ifneq ($(strip $(EXTRA_BINS)),)
BOOT_INITRD := $(GUEST)/initramfs+clients+extra.cpio
.PHONY: $(BOOT_INITRD)
$(BOOT_INITRD): $(INITRD) $(CLIENTS)
	@$(H)/scripts/mkinitramfs.sh --extra $(GUEST)/extra.cpio \
		$(BUILD)/tools/gen_init_cpio $(EXTRA_BINS)
	@cat $^ $(GUEST)/extra.cpio > $@
else
BOOT_INITRD := $(GUEST)/initramfs+clients.cpio
$(BOOT_INITRD): $(INITRD) $(CLIENTS)
	@cat $^ > $@
endif

initramfs: $(BOOT_INITRD)

# --- boot ----------------------------------------------------------------------
# On our kernel, check also runs the static checks (make lint) on the
# host, counted with the guest's tests.
check: $(KERNEL_DEP) initramfs
	@rc=0; $(GUEST_RUN) --suite check --log-dir $(LOGS)-check \
		--attempts $(ATTEMPTS) --append "$(APPEND)" || rc=1; \
	$(if $(filter ours,$(KERNEL)),$(LINT) $(LOGS)-check/counts-lint || rc=1; \
		$(SERIES_CHECK) $(LOGS)-check/counts-series || rc=1;) \
	exit $$rc

# Static checks of our files: checkpatch --strict, kernel-doc, W=1 and
# sparse on mm/ksm (harness/scripts/lint.sh); needs our configured tree.
LINT = $(if $(wildcard $(BUILD)/obj/ours$(if $(filter 1,$(DEBUG)),-debug)/.config),\
	$(H)/scripts/lint.sh $(PRISTINE) $(BUILD)/src/ours \
		$(BUILD)/obj/ours$(if $(filter 1,$(DEBUG)),-debug) $(CURDIR),\
	echo "lint: no configured tree of ours (make kernel first)"; false)
lint:
	@$(MAKE) --no-print-directory kernel KERNEL=ours
	@$(LINT)

# make series: the work as a git format-patch series on pristine 6.12
# (steps in patches/plan), with a cover letter, in build/series/out; it
# is applied with git am to a fresh 6.12 and must give our tree.
# make series-verify: builds every prefix of it with our config, then
# boots the last through make check.
SERIES_DIR := $(BUILD)/series
SERIES = $(H)/scripts/series.sh $(PRISTINE) $(CURDIR) $(SERIES_DIR) \
	$(SERIES_DIR)/out $(BUILD)/src/ours
# For make check: one more result line and its count.
SERIES_CHECK = sh -c '$(SERIES) && echo "1 0 0" > "$$0" || \
	{ echo "0 1 0" > "$$0"; false; }'
series: tree
	@$(SERIES)

series-verify: series
	@img=$$($(H)/scripts/series-verify.sh $(SERIES_DIR) $(BUILD)/obj/series \
		$(H) "$(KCC)" $(JOBS) | tee /dev/stderr | tail -1) && \
	$(MAKE) --no-print-directory check KERNEL=ours IMAGE=$$img \
		STAMP=$(STAMP)-series

run: $(KERNEL_DEP) initramfs
	@$(GUEST_RUN) --suite run --log-dir $(LOGS)-run \
		--append "$(APPEND) demo_args=$(subst $(space),$(comma),$(strip $(DEMO)))"

# One shell script in the guest, reported as one test, for experiments:
#   make exec CMD='./ksm_tests -M -p 10'    or    make exec SCRIPT=file
# It runs in the directory of 6.12's selftests, carried in a second cpio
# archive appended to the initramfs.
exec: $(KERNEL_DEP) initramfs
	@mkdir -p $(GUEST)/exec $(shell mkdir -p $(GUEST)/exec)
	@$(if $(SCRIPT),cp $(SCRIPT) $(GUEST)/exec/exec.sh,$(file >$(GUEST)/exec/exec.sh,$(CMD)))
	@echo "file /exec.sh $(GUEST)/exec/exec.sh 0755 0 0" > $(GUEST)/exec/list
	@$(BUILD)/tools/gen_init_cpio $(GUEST)/exec/list > $(GUEST)/exec/extra.cpio
	@cat $(BOOT_INITRD) $(GUEST)/exec/extra.cpio > $(GUEST)/exec/initramfs.cpio
	@$(GUEST_RUN:$(BOOT_INITRD)=$(GUEST)/exec/initramfs.cpio) --suite exec \
		--log-dir $(LOGS)-exec --append "$(APPEND)"

shell: $(KERNEL_DEP) initramfs
	@$(GUEST_RUN) --suite shell --log-dir $(LOGS)-shell --append "$(APPEND)"

# The randomized stress (harness/guest/ksm_stress.c) for DURATION seconds:
# SEED (default: drawn, printed), STRESS_OPS (all, crash, or a list such
# as fork,mremap,move_pages,pageout,merge), STRESS_ARGS (more ksm_stress
# options, e.g. -n 8 -m 16).  slab_nomerge keeps KSM's slab caches apart,
# so that their object counts can be checked at the end.
SEED       ?=
STRESS_OPS ?= all
STRESS_ARGS ?=
STRESS_CMDLINE = slab_nomerge stress_limit=$(shell echo $$(( $(DURATION) + 1200 ))) \
	stress_args=$(subst $(space),$(comma),$(strip -d $(DURATION) $(if $(SEED),-s $(SEED)) \
		-o $(subst $(comma),+,$(STRESS_OPS)) $(STRESS_ARGS)))
stress: $(KERNEL_DEP) initramfs
	@$(GUEST_RUN) --suite stress --log-dir $(LOGS)-stress \
		--append "$(strip $(APPEND) $(STRESS_CMDLINE))"

# The same workloads on both kernels, medians and ratios (harness/guest/
# ksm_bench.c, harness/scripts/bench.py); REPEATS runs each, BENCH_ARGS for
# ksm_bench mix, comma-separated (e.g. BENCH_ARGS=-n,4,-m,128).
# BENCH_ICOUNT: the guests' instruction clock (QEMU -icount shift; empty
# for the host's clock); BENCH_SMP: their vCPUs (default 1 on the
# instruction clock, 2 on the host's).
REPEATS    ?= 5
BENCH_ARGS ?= -n,4,-m,128
BENCH_ICOUNT ?= 0
BENCH_SMP  ?=
# BENCH_ONLY: some workloads only, comma-separated (mix,volatile,ksm_tests,churn)
BENCH_ONLY ?=
bench:
	@$(MAKE) --no-print-directory kernel KERNEL=baseline DEBUG=0
	@$(MAKE) --no-print-directory kernel initramfs KERNEL=ours DEBUG=0
	@python3 $(H)/scripts/bench.py --initrd $(INITRD) --harness $(H) \
		--ours $(BUILD)/obj/ours/arch/x86/boot/bzImage \
		--baseline $(BUILD)/obj/baseline/arch/x86/boot/bzImage \
		--out $(BUILD)/bench/$(STAMP) --repeats $(REPEATS) \
		--args="$(BENCH_ARGS)" --icount="$(BENCH_ICOUNT)" --only="$(BENCH_ONLY)" \
		$(if $(BENCH_SMP),--smp $(BENCH_SMP))

# Both kernels, one closing line.  The baseline run is the proof that the
# tests test KSM, not our harness.
test:
	@rc=0; for k in ours baseline; do \
		$(MAKE) --no-print-directory check KERNEL=$$k STAMP=$(STAMP) || rc=1; \
	done; \
	cat $(BUILD)/logs/$(STAMP)-ours$(if $(filter 1,$(DEBUG)),-debug)-check/counts* \
		$(BUILD)/logs/$(STAMP)-baseline$(if $(filter 1,$(DEBUG)),-debug)-check/counts \
		2>/dev/null | awk '{ p += $$1; f += $$2; s += $$3; n++ } \
	     END { if (n < 2) { p = 0; f = 1; s = 0 } \
		   printf "%d passed, %d failed, %d skipped\n", p, f, s }'; \
	exit $$rc

clean:
	rm -rf $(BUILD)/obj $(BUILD)/guest $(BUILD)/logs $(BUILD)/tools

distclean:
	rm -rf $(BUILD)

comma := ,
space := $(subst ,, )
