#!/usr/bin/env bash
# test-orchestrator.sh DIR — test-only helper: build basalt's TEST ORCHESTRATOR
# (initsys/k3s/testdata/orchestrator, a stand-in for k3s in boot tests; it is
# not k3s) for amd64, arm64 and armhf into DIR/k3s, DIR/k3s-arm64, DIR/k3s-armhf
# (k3s' release names, so BASALT_K3S=DIR works like a directory of k3s release
# files). Each is static and in k3s' release format: an outer binary with one
# go:embed'd data archive named <sha256>.tar.zst (bin/k3s = the orchestrator,
# etc/), which basalt pre-extracts into the root like k3s' own.
# Reproducible: same sources and Go -> same bytes.
# test-orchestrator.sh DIR SRC BINDIR packages another test program SRC as
# bin/k3s with BINDIR/<arch>/* next to it in bin/ (scripts/test-containerd.sh).
set -euo pipefail
out=${1:?usage: test-orchestrator.sh DIR [SRC BINDIR]}
repo=$(cd "$(dirname "$0")/.." && pwd)
src=${2:-$repo/initsys/k3s/testdata/orchestrator}
bindir=${3:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for arch in amd64 arm64 armhf; do
  case $arch in
    amd64) env=(GOARCH=amd64); name=k3s ;;
    arm64) env=(GOARCH=arm64); name=k3s-arm64 ;;
    armhf) env=(GOARCH=arm GOARM=7); name=k3s-armhf ;;
  esac
  d=$work/$arch
  mkdir -p "$d/data/bin/aux" "$d/data/etc" "$d/wrapper/data"
  (cd "$repo" && env CGO_ENABLED=0 GOOS=linux "${env[@]}" go build -trimpath -ldflags='-s -w -buildid=' -o "$d/data/bin/k3s" "$src")
  if [ -n "$bindir" ]; then cp "$bindir/$arch"/* "$d/data/bin/"; fi
  printf 'basalt test orchestrator data (not k3s)\n' >"$d/data/etc/test-orchestrator.txt"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$d/data" -cf - bin etc | zstd -q -${ZSTD_LEVEL:-19} -o "$d/data.tar.zst"
  sum=$(sha256sum "$d/data.tar.zst" | cut -d' ' -f1)
  mv "$d/data.tar.zst" "$d/wrapper/data/$sum.tar.zst"
  cp "$repo/initsys/k3s/testdata/orchestrator/wrapper/main.go" "$d/wrapper/"
  printf 'module basalt.test/orchestrator\n\ngo 1.26\n' >"$d/wrapper/go.mod"
  (cd "$d/wrapper" && env GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0 GOOS=linux "${env[@]}" go build -trimpath -ldflags='-s -w -buildid=' -o "$out/$name" .)
done
echo "test program $(basename "$src") (not k3s) in $out: $(cd "$out" && echo k3s*)"
