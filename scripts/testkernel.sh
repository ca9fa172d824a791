#!/usr/bin/env bash
# testkernel.sh ARCH DIR — test-only helper: unpack a Debian kernel for ARCH
# (amd64 -> cloud-amd64, arm64 -> cloud-arm64, armhf -> armmp) into DIR:
#   DIR/vmlinuz, DIR/lib/modules/<release>/... with modules.dep (host depmod),
#   DIR/release (the kernel release string).
#   DIR/systemd-boot*.efi and DIR/linux*.efi.stub (amd64, arm64: systemd-boot
#   and the EFI stub of Secure Boot UKIs, from systemd-boot-efi of that arch).
# Device tests that run before an image exists boot this kernel directly.
# Uses host apt-get/dpkg-deb/depmod; basalt itself fetches kernels in Go.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin
arch=${1:?usage: testkernel.sh ARCH DIR}
out=${2:?usage: testkernel.sh ARCH DIR}
case $arch in
  amd64) meta=linux-image-cloud-amd64 ;;
  arm64) meta=linux-image-cloud-arm64 ;;
  armhf) meta=linux-image-armmp ;;
  *) echo "testkernel.sh: unknown arch $arch (amd64, arm64, armhf)" >&2; exit 2 ;;
esac
stub=
case $arch in amd64) stub=linuxx64.efi.stub ;; arm64) stub=linuxaa64.efi.stub ;; esac
if [ -f "$out/vmlinuz" ] && [ -f "$out/release" ] && { [ -z "$stub" ] || [ -f "$out/$stub" ]; }; then exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
apt=(-qq -oAPT::Sandbox::User=root -oAPT::Architecture="$arch" -oAPT::Architectures="$arch"
     -oDir::State::Lists="$work/lists" -oDir::Cache="$work/cache"
     -oDir::State::status=/dev/null)
# A mirror mid-sync can serve one stale index (seen: bookworm-security armhf);
# apt then fails the update but keeps the other suites' indexes: go on with them.
apt-get "${apt[@]}" update >/dev/null 2>"$work/update.err" ||
  { echo "testkernel.sh: warning: some package indexes failed, using the others:" >&2; grep '^E:' "$work/update.err" | head -3 >&2; }
pkg=$(apt-cache "${apt[@]}" depends "$meta" | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
[ -n "$pkg" ] || { echo "testkernel.sh: cannot resolve $meta" >&2; exit 1; }
(cd "$work" && apt-get "${apt[@]}" download "$pkg:$arch" >/dev/null)
dpkg-deb -x "$work"/linux-image-*.deb "$work/root"
if [ "$arch" != armhf ]; then
  (cd "$work" && apt-get "${apt[@]}" download "systemd-boot-efi:$arch" >/dev/null)
  dpkg-deb -x "$work"/systemd-boot-efi_*.deb "$work/sdboot"
fi
release=$(ls "$work/root/lib/modules")
mkdir -p "$out.tmp/lib/modules"
cp "$work/root/boot/vmlinuz-$release" "$out.tmp/vmlinuz"
cp -a "$work/root/lib/modules/$release" "$out.tmp/lib/modules/"
cp "$work/root/boot/config-$release" "$out.tmp/config"
depmod -b "$out.tmp" "$release"
if [ -d "$work/sdboot" ]; then cp "$work"/sdboot/usr/lib/systemd/boot/efi/systemd-boot*.efi "$work/sdboot/usr/lib/systemd/boot/efi/$stub" "$out.tmp/"; fi
echo "$release" >"$out.tmp/release"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "testkernel.sh: $pkg -> $out"
