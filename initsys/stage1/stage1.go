// Package stage1 is /init in the initramfs: it mounts the slot's root and
// hands over to stage 2.
package stage1

// Main runs stage 1; it never returns.
func Main() {
	select {}
}
