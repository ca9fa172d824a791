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
#     gcc-arm-linux-gnueabihf), with libseccomp (the seccomp build tag):
#     amd64 from the host's libseccomp-dev, arm64/armhf from Debian's
#     libseccomp-dev:arm64/:armhf .debs (apt-get download with a private
#     package list, signature-checked by apt; unpacked into a sysroot here,
#     nothing installed on the host).
set -euo pipefail
out=${1:?usage: test-containerd.sh DIR}
repo=$(cd "$(dirname "$0")/.." && pwd)
containerd=v2.3.4
runc=v1.4.2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod GOWORK=off
mods=$(go env GOMODCACHE)
# Debian's cross libseccomp-dev (its libseccomp.a), one sysroot per arch,
# at a fixed path next to DIR. go's build cache keeps the cgo link flags
# pkg-config gave, but its key does not cover PKG_CONFIG_*: CGO_LDFLAGS
# names the sysroot too, so a moved sysroot rebuilds the cgo package.
sysroots=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")-sysroot
sysroot() { # ARCH
  local apt=$work/apt a=(-o Dir::State::Lists="$work/apt/lists" -o Dir::Cache="$work/apt/cache"
    -o Dir::State::status=/dev/null -o APT::Sandbox::User=root -o APT::Architecture="$1" -o APT::Architectures::="$1")
  rm -rf "${sysroots:?}/$1"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$work/deb-$1" "$sysroots/$1"
  apt-get -qq "${a[@]}" update
  (cd "$work/deb-$1" && apt-get -qq "${a[@]}" download "libseccomp-dev:$1" 2>/dev/null)
  dpkg-deb -x "$work/deb-$1"/libseccomp-dev_*_"$1".deb "$sysroots/$1"
}
(cd "$work" && go mod download github.com/containerd/containerd/v2@$containerd github.com/opencontainers/runc@$runc)
for arch in amd64 arm64 armhf; do
  case $arch in
    amd64) env=(GOARCH=amd64); cc=gcc ;;
    arm64) env=(GOARCH=arm64); cc=aarch64-linux-gnu-gcc; triplet=aarch64-linux-gnu ;;
    armhf) env=(GOARCH=arm GOARM=7); cc=arm-linux-gnueabihf-gcc; triplet=arm-linux-gnueabihf ;;
  esac
  if [ "$arch" != amd64 ]; then
    sysroot "$arch"
    s=$sysroots/$arch
    env+=(PKG_CONFIG_LIBDIR="$s/usr/lib/$triplet/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$s"
      CGO_CFLAGS="-O2 -I$s/usr/include" CGO_LDFLAGS="-L$s/usr/lib/$triplet")
  fi
  bin=$work/bin/$arch
  mkdir -p "$bin"
  (cd "$mods/github.com/containerd/containerd/v2@$containerd" && env CGO_ENABLED=0 GOOS=linux "${env[@]}" \
    go build -trimpath -ldflags='-s -w -buildid=' -tags 'no_btrfs no_devmapper no_zfs' -o "$bin/" ./cmd/containerd ./cmd/containerd-shim-runc-v2 ./cmd/ctr)
  (cd "$mods/github.com/opencontainers/runc@$runc" && env CGO_ENABLED=1 CC=$cc GOOS=linux "${env[@]}" \
    go build -trimpath -buildvcs=false -tags "seccomp netgo osusergo" \
    -ldflags='-s -w -buildid= -extldflags "-static -Wl,--build-id=none"' -o "$bin/runc" .)
done
ZSTD_LEVEL=3 bash "$repo/scripts/test-orchestrator.sh" "$out" "$repo/initsys/k3s/testdata/containerd-proof" "$work/bin"
