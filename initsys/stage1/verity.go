package stage1

import (
	"fmt"
	"os"

	"github.com/basaltos/basalt/contract/verity"
	"github.com/basaltos/basalt/initsys/dm"
	"github.com/basaltos/basalt/initsys/say"
)

// openVerity puts the slot's partition behind dm-verity when the command
// line names a root hash: the squashfs is then mounted from the mapped
// device, whose every read the kernel checks against the tree. The tree's
// geometry comes from the command line; the superblock on the partition is
// only checked to agree with it (its salt goes into the table: a wrong salt
// gives a wrong root, which the kernel refuses on the first read).
func (s *state) openVerity() error {
	c := s.cmdline
	if c.VerityRoot == nil {
		say.Printf("stage1: no %s= on the command line: root %s is not verified", verity.CmdlineRootHash, c.Slot)
		return nil
	}
	f, err := os.Open(s.rootDev)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, verity.SuperblockSize)
	off := int64(c.VerityBlocks) * verity.BlockSize
	if _, err := f.ReadAt(head, off); err != nil {
		return slotError{fmt.Errorf("slot %s (%s): read the verity superblock at %d: %w", c.Slot, s.rootDev, off, err)}
	}
	sb, err := verity.Parse(head)
	if err != nil {
		return slotError{fmt.Errorf("slot %s (%s) has no valid hash tree at %d: %w", c.Slot, s.rootDev, off, err)}
	}
	if sb.DataBlocks != c.VerityBlocks {
		return slotError{fmt.Errorf("slot %s (%s): verity superblock covers %d blocks, the command line %d", c.Slot, s.rootDev, sb.DataBlocks, c.VerityBlocks)}
	}
	length, params := verity.Table(s.rootDev, c.VerityBlocks, c.VerityRoot, sb.Salt)
	node, err := dm.CreateReadOnly(verity.MapperName, dm.Target{Length: length, Type: "verity", Params: params})
	if err != nil {
		return fmt.Errorf("slot %s: %w", c.Slot, err)
	}
	say.Printf("stage1: root %s: dm-verity on %s, root hash %x", c.Slot, s.rootDev, c.VerityRoot)
	s.rawDev, s.rootDev, s.verity = s.rootDev, node, true
	return nil
}

// verityHint says why a verified root did not mount.
func verityHint() string {
	st, err := dm.Status(verity.MapperName)
	if err != nil || len(st) != 1 {
		return fmt.Sprintf(" (dm-verity status: %v)", err)
	}
	if st[0].Params == "C" {
		return " (dm-verity found corruption: the slot's data does not match its root hash)"
	}
	return " (dm-verity status " + st[0].Params + ")"
}
