# basalt — build, demo, test, bench, lint.
#   make demo   installs what it needs, builds basalt and the default image, boots it in QEMU
#   make test   everything CI runs: lint, unit tests (fuzz seeds included), image checks with
#               the real tools, QEMU boot tests; prints each layer's time at the end
#   make unit   seconds, no QEMU          make e2e   QEMU boot tests (TCG; KVM when it works)
#   make bench  benchmarks, one table of ratios against references measured in the same run
#   make lint   gofmt, go vet, staticcheck

SHELL       := /bin/bash
# The image checks call sgdisk, fsck.vfat, e2fsck, depmod: sbin tools.
export PATH := $(PATH):/usr/sbin:/sbin
GO          ?= go
BIN         := bin
OUT         ?= out
CACHE       := $(CURDIR)/.cache
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOFLAGS_REPRO := -trimpath -ldflags='-s -w -buildid='
INIT_ARCHES := amd64 arm64 armhf

# Host packages: QEMU and firmware to boot, and the real tools the tests check images with.
HOST_PKGS := qemu-system-x86 qemu-system-arm qemu-utils ovmf qemu-efi-aarch64 qemu-efi-arm \
	u-boot-qemu u-boot-tools squashfs-tools gdisk dosfstools e2fsprogs mtools kmod cpio \
	zstd xz-utils busybox-static systemd-boot-efi cryptsetup-bin fdisk \
	gcc libc6-dev libseccomp-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross sbsigntool openssl
# One file per package that proves it is installed.
HOST_CHECK := /usr/bin/qemu-system-x86_64 /usr/bin/qemu-system-aarch64 /usr/bin/qemu-img \
	/usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/AAVMF/AAVMF_CODE.fd /usr/share/AAVMF/AAVMF32_CODE.fd \
	/usr/lib/u-boot/qemu_arm/u-boot.bin /usr/bin/mkimage /usr/bin/unsquashfs /usr/sbin/sgdisk \
	/usr/sbin/fsck.vfat /usr/sbin/sfdisk /usr/sbin/e2fsck /usr/bin/mdir /usr/sbin/depmod /usr/bin/cpio \
	/usr/bin/zstd /usr/bin/xz /bin/busybox /usr/lib/systemd/boot/efi/systemd-bootx64.efi \
	/usr/sbin/veritysetup /usr/lib/x86_64-linux-gnu/libseccomp.a /usr/bin/aarch64-linux-gnu-gcc /usr/bin/arm-linux-gnueabihf-gcc /usr/bin/sbverify /usr/bin/openssl

.PHONY: all build deps demo test unit e2e e2e-k3s unit-run e2e-run testdata tour-inputs pi-inputs bench lint clean

all: build

# ---- build ------------------------------------------------------------------
# The device binary for each arch, embedded into basalt (image/initbin).
image/initbin/bin/basalt-init-amd64: GOENV_ARCH := GOARCH=amd64
image/initbin/bin/basalt-init-arm64: GOENV_ARCH := GOARCH=arm64
image/initbin/bin/basalt-init-armhf: GOENV_ARCH := GOARCH=arm GOARM=7
image/initbin/bin/basalt-init-%: FORCE
	@CGO_ENABLED=0 GOOS=linux $(GOENV_ARCH) $(GO) build $(GOFLAGS_REPRO) -o $@ ./cmd/basalt-init

# basalt --version names the commit (a dirty tree says so).
COMMIT := $(shell git describe --always --dirty --abbrev=40 2>/dev/null)
build: $(addprefix image/initbin/bin/basalt-init-,$(INIT_ARCHES))
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w -buildid= -X github.com/basaltos/basalt/cmd/basalt/cli.Commit=$(COMMIT)' -o $(BIN)/basalt ./cmd/basalt
	@echo "built $(BIN)/basalt"

FORCE:

# ---- host packages ----------------------------------------------------------
deps:
	@missing=0; for f in $(HOST_CHECK); do [ -e $$f ] || missing=1; done; \
	if [ $$missing = 0 ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
		echo "installing host packages: $(HOST_PKGS)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(HOST_PKGS) >/dev/null; \
	else \
		echo "basalt needs these host packages for QEMU and the image checks; run:"; \
		echo "  sudo apt-get install -y --no-install-recommends $(HOST_PKGS)"; exit 1; \
	fi
	@$(GO) version | awk '{ split($$3, v, "."); if (v[1] != "go1" || v[2] < 26) { print "basalt needs Go >= 1.26 (found " $$3 "): see https://go.dev/dl/"; exit 1 } }'

# ---- demo -------------------------------------------------------------------
demo: deps build
	$(BIN)/basalt build -o $(OUT)
	@echo "booting in QEMU (TCG unless KVM works); quit with Ctrl-A X"
	$(BIN)/basalt qemu --disk-size 4G --net outside --snapshot $$(ls $(OUT)/*-qemu-x86_64.img | head -1)

# ---- tests ------------------------------------------------------------------
# Inputs the boot tests use, fetched before the tests run (tests touch no network).
testdata: deps tour-inputs pi-inputs $(CACHE)/test-orchestrator/k3s $(CACHE)/test-containerd/k3s
	@bash scripts/testkernel.sh amd64 $(CACHE)/testkernel/amd64
	@bash scripts/testkernel.sh arm64 $(CACHE)/testkernel/arm64
	@bash scripts/testkernel.sh armhf $(CACHE)/testkernel/armhf
	@bash scripts/containerd-inputs.sh $(CACHE)

# basalt's test orchestrator (a stand-in for k3s in boot tests, not k3s) for
# each arch, in k3s' release names and format: BASALT_K3S=$(CACHE)/test-orchestrator.
ORCHESTRATOR_SRC := $(wildcard initsys/k3s/testdata/orchestrator/*.go initsys/k3s/testdata/orchestrator/wrapper/*.go) scripts/test-orchestrator.sh
$(CACHE)/test-orchestrator/k3s: $(ORCHESTRATOR_SRC)
	@bash scripts/test-orchestrator.sh $(CACHE)/test-orchestrator

# The containerd proof (a test program in k3s' place, not k3s) with a real
# containerd and runc from their Go modules, for the container runtime boot test
# (runc's cross libseccomp from Debian's libseccomp-dev:arm64/:armhf .debs,
# downloaded by apt-get into a sysroot next to it, nothing installed).
CONTAINERD_SRC := $(wildcard initsys/k3s/testdata/containerd-proof/*.go) scripts/test-containerd.sh $(ORCHESTRATOR_SRC)
$(CACHE)/test-containerd/k3s: $(CONTAINERD_SRC)
	@bash scripts/test-containerd.sh $(CACHE)/test-containerd

# The Raspberry Pi example's Debian inputs (trixie arm64 kernel,
# raspi-firmware, u-boot-rpi) and lock, for the Pi build and boot tests.
pi-inputs: build
	@rm -rf $(CACHE)/pi && mkdir -p $(CACHE)/pi && cp examples/raspberry-pi/basalt.yaml $(CACHE)/pi/
	@BASALT_CACHE_DIR=$(CACHE)/basalt $(CURDIR)/$(BIN)/basalt fetch -f $(CACHE)/pi/basalt.yaml >/dev/null

# The README tour's Debian inputs, fetched online once by the real builds; the
# e2e tour test (cmd/basalt/cli) then runs every README command offline.
# k3s is the test orchestrator (GitHub downloads do not work on CI machines).
tour-inputs: build $(CACHE)/test-orchestrator/k3s
	@rm -rf $(CACHE)/tour && mkdir -p $(CACHE)/tour && cp -r examples $(CACHE)/tour/
	@cd $(CACHE)/tour && export BASALT_CACHE_DIR=$(CACHE)/basalt BASALT_K3S=$(CACHE)/test-orchestrator && \
		$(CURDIR)/$(BIN)/basalt build -o out >/dev/null && \
		$(CURDIR)/$(BIN)/basalt build -f examples/retail-store/basalt.yaml --board qemu-x86_64 -o out >/dev/null && \
		rm -rf out

# unit and e2e prepare the test inputs first; `make test` prepares them once
# (the tour's images are built by tour-inputs only) and runs unit-run and
# e2e-run. Both print the slowest tests at the end (internal/testtimes).
unit: testdata
	@$(MAKE) --no-print-directory unit-run

e2e: testdata
	@$(MAKE) --no-print-directory e2e-run

unit-run:
	@set -o pipefail; $(GO) test -json -count=1 ./... | $(GO) run ./internal/testtimes

e2e-run:
	@set -o pipefail; $(GO) test -json -count=1 -tags e2e -run '^TestE2E' -timeout 60m ./... | $(GO) run ./internal/testtimes

# The k3s boot tests alone; with BASALT_K3S=/path/to/k3s (a binary or a directory of
# k3s release files) they build and boot a real k3s instead of the test orchestrator.
e2e-k3s: testdata
	$(GO) test -count=1 -tags e2e -run '^TestE2EK3s' -timeout 90m -v ./cmd/basalt/cli

test:
	@set -e; t0=$$(date +%s); \
	$(MAKE) --no-print-directory deps testdata; t1=$$(date +%s); \
	$(MAKE) --no-print-directory lint; t2=$$(date +%s); \
	$(MAKE) --no-print-directory unit-run; t3=$$(date +%s); \
	$(MAKE) --no-print-directory e2e-run; t4=$$(date +%s); \
	printf '\n== make test layer times\n  setup (host packages, test inputs) %5ds\n  lint                               %5ds\n  unit (no QEMU)                     %5ds\n  e2e (QEMU boot tests)              %5ds\n  total                              %5ds\n' \
		$$((t1-t0)) $$((t2-t1)) $$((t3-t2)) $$((t4-t3)) $$((t4-t0))

# ---- benchmarks ---------------------------------------------------------------
bench: testdata
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m -tags e2e ./... | tee $(CACHE)/bench.txt | $(GO) run ./internal/benchtable

# ---- lint ---------------------------------------------------------------------
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf $(BIN) $(OUT) image/initbin/bin/basalt-init-*
