package k3s

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"

	"github.com/basaltos/basalt/boards"
)

// ErrNotRunnable marks a binary that cannot run in a basalt root.
var ErrNotRunnable = errors.New("binary cannot run on the board")

// CheckBinary checks that the file at path is an ELF executable for arch
// and statically linked: a basalt root has no libc and no dynamic loader.
func CheckBinary(path string, arch boards.Arch) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: not an ELF executable (%w): %w", path, err, ErrNotRunnable)
	}
	defer f.Close()
	want, class := elf.EM_X86_64, elf.ELFCLASS64
	switch arch {
	case boards.ARM64:
		want = elf.EM_AARCH64
	case boards.ARMHF:
		want, class = elf.EM_ARM, elf.ELFCLASS32
	}
	if f.Machine != want || f.Class != class {
		return fmt.Errorf("%s is built for %s (%s), the board's architecture is %s (%s, %s): %w",
			path, f.Machine, f.Class, arch, want, class, ErrNotRunnable)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (it asks for a program interpreter), but the root has no libc: use a static build (k3s release binaries are static): %w", path, ErrNotRunnable)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return fmt.Errorf("%s needs shared libraries %v, but the root has no libc: use a static build: %w", path, libs, ErrNotRunnable)
	}
	return nil
}

// versionMark is what every k3s release version has: v1.X.Y+k3sN (k3s'
// own components carry theirs as -k3sN, e.g. containerd's v2.0.4-k3s2).
var versionMark = []byte("+k3s")

// BinaryVersion reads the k3s version (v1.33.1+k3s1) out of the binary's
// bytes: k3s links it in as a string (pkg/version.Version, set by its
// build), and running the binary is no way to ask when it is built for
// another architecture. The most frequent well-formed match wins (the
// version of kubernetes' own components is the same string); "" when the
// binary carries none.
func BinaryVersion(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return versionIn(b), nil
}

func versionIn(b []byte) string {
	count := map[string]int{}
	best := ""
	for i := 0; ; {
		j := bytes.Index(b[i:], versionMark)
		if j < 0 {
			break
		}
		at := i + j
		i = at + len(versionMark)
		if v := versionAround(b, at); v != "" {
			count[v]++
			if count[v] > count[best] || (count[v] == count[best] && v < best) {
				best = v
			}
		}
	}
	return best
}

// versionAround returns the version vMAJOR.MINOR.PATCH[-PRE]+k3sN whose
// "+k3s" is at b[at:], or "". Go lays string data out back to back, without
// separators: the version ends with N's digits and starts at the last "v"
// before it.
func versionAround(b []byte, at int) string {
	end := at + len(versionMark)
	for end < len(b) && isDigit(b[end]) && end-at < len(versionMark)+4 {
		end++
	}
	if end == at+len(versionMark) {
		return ""
	}
	start := at
	for start > 0 && at-start < 64 && isVersionByte(b[start-1]) {
		start--
	}
	v := b[start:end]
	k := bytes.LastIndexByte(v[:at-start], 'v')
	if k < 0 {
		return ""
	}
	v = v[k:]
	core, _, _ := bytes.Cut(v[1:], []byte("+"))
	core, _, _ = bytes.Cut(core, []byte("-"))
	parts := bytes.Split(core, []byte("."))
	if len(parts) != 3 {
		return ""
	}
	for _, p := range parts {
		if len(p) == 0 || !allDigits(p) {
			return ""
		}
	}
	return string(v)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isVersionByte(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '-' || c == '+'
}

func allDigits(p []byte) bool {
	for _, c := range p {
		if !isDigit(c) {
			return false
		}
	}
	return true
}
