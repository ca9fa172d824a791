package k3s

import (
	"debug/elf"
	"errors"
	"fmt"

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
