#!/usr/bin/env bash
# test-containerd.sh DIR — test-only helper: build basalt's CONTAINERD PROOF
# (initsys/k3s/testdata/containerd-proof, a test program, not k3s) for amd64,
# arm64 and armhf into DIR/k3s, DIR/k3s-arm64, DIR/k3s-armhf, in k3s' release
# format (scripts/test-orchestrator.sh packages it), with a REAL containerd,
# containerd-shim-runc-v2, ctr and runc in its data dir's bin/, as k3s ships
# them. Built from their Go modules (network: the Go module proxy, once, in
# make testdata):
#   containerd v2.3.4: k3s v1.36 pins github.com/k3s-io/containerd/v2
#     v2.3.4-k3s1.36, which the Go proxy does not serve; this is its upstream
#     base. CGO_ENABLED=0, so static.
#   runc v1.4.2: k3s v1.36's go.mod pin. runc needs cgo (nsenter): linked
#     statically against glibc's libc.a (Debian gcc, gcc-aarch64-linux-gnu,
#     gcc-arm-linux-gnueabihf); amd64 with libseccomp (libseccomp-dev's .a),
#     arm64/armhf without seccomp (no cross libseccomp here).
set -euo pipefail
out=${1:?usage: test-containerd.sh DIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
containerd=v2.3.4
runc=v1.4.2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOWORK=off
mods=$(go env GOMODCACHE)
(cd "$work" && go mod download github.com/containerd/containerd/v2@$containerd github.com/opencontainers/runc@$runc)
for arch in amd64 arm64 armhf; do
  case $arch in
    amd64) env=(GOARCH=amd64); cc=gcc; tags=seccomp ;;
    arm64) env=(GOARCH=arm64); cc=aarch64-linux-gnu-gcc; tags= ;;
    armhf) env=(GOARCH=arm GOARM=7); cc=arm-linux-gnueabihf-gcc; tags= ;;
  esac
  bin=$work/bin/$arch
  mkdir -p "$bin"
  (cd "$mods/github.com/containerd/containerd/v2@$containerd" && env CGO_ENABLED=0 GOOS=linux "${env[@]}" \
    go build -trimpath -ldflags='-s -w -buildid=' -tags 'no_btrfs no_devmapper no_zfs' -o "$bin/" ./cmd/containerd ./cmd/containerd-shim-runc-v2 ./cmd/ctr)
  (cd "$mods/github.com/opencontainers/runc@$runc" && env CGO_ENABLED=1 CC=$cc GOOS=linux "${env[@]}" \
    go build -trimpath -buildvcs=false -tags "$tags netgo osusergo" \
    -ldflags='-s -w -buildid= -extldflags "-static -Wl,--build-id=none"' -o "$bin/runc" .)
done
ZSTD_LEVEL=3 bash "$repo/scripts/test-orchestrator.sh" "$out" "$repo/initsys/k3s/testdata/containerd-proof" "$work/bin"
