package qemu

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/basaltos/basalt/image/imgfile"
)

// fromImage copies the boot-partition files kernel and dtb of the image
// into dir, for a machine where QEMU stands in for the firmware.
func fromImage(image, dir, kernel, dtb string) (string, string, error) {
	im, err := imgfile.Open(image)
	if err != nil {
		return "", "", err
	}
	defer im.Close()
	boot, err := im.BootFS()
	if err != nil {
		return "", "", err
	}
	var out []string
	for _, name := range []string{kernel, dtb} {
		b, err := boot.ReadFile(name)
		if err != nil {
			return "", "", fmt.Errorf("%s: boot partition: %w", image, err)
		}
		p := filepath.Join(dir, filepath.Base(name))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return "", "", err
		}
		out = append(out, p)
	}
	return out[0], out[1], nil
}
