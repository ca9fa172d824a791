#!/usr/bin/env bash
# containerd-inputs.sh CACHE — test-only helper for make testdata: fetch
# (online) the Debian inputs a bookworm k3s image needs on the three QEMU
# boards (the package indexes, ca-certificates) into CACHE/basalt, so the
# containerd e2e tests (qemu/containerd_e2e_test.go) build them offline. All
# three at once: a fetch refreshes the suites' InRelease, and an index of a
# board left out would then be missing.
set -euo pipefail
cache=$(cd "${1:?usage: containerd-inputs.sh CACHE}" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
k=$cache/testkernel
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/basalt.yaml" <<SPEC
apiVersion: basalt.dev/v1alpha1
kind: Image
name: ctrd
version: 1.0.0
boards: [qemu-x86_64, qemu-arm64, qemu-armv7]
kernel:
  qemu-x86_64: {vmlinuz: $k/amd64/vmlinuz, modules: $k/amd64/lib/modules}
  qemu-arm64: {vmlinuz: $k/arm64/vmlinuz, modules: $k/arm64/lib/modules}
  qemu-armv7: {vmlinuz: $k/armhf/vmlinuz, modules: $k/armhf/lib/modules}
debian: {suite: bookworm}
orchestrator: {kind: k3s, airgap: {none: true}}
bootloader:
  qemu-x86_64: {file: /usr/lib/systemd/boot/efi/systemd-bootx64.efi}
  qemu-arm64: {file: $k/arm64/systemd-bootaa64.efi}
SPEC
BASALT_CACHE_DIR=$cache/basalt BASALT_K3S=$cache/test-containerd "$repo/bin/basalt" fetch -f "$work/basalt.yaml" >/dev/null
echo "containerd e2e inputs for qemu-x86_64, qemu-arm64, qemu-armv7 in $cache/basalt"
