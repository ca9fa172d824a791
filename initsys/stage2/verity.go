package stage2

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/basaltos/basalt/contract/verity"
	"github.com/basaltos/basalt/initsys/dm"
	"github.com/basaltos/basalt/initsys/say"
	"github.com/basaltos/basalt/initsys/status"
)

// verityPoll is how often the root's dm-verity status is read: one ioctl.
const verityPoll = 5 * time.Second

// watchVerity reads the verified root's device-mapper status now and
// every verityPoll: dm-verity answers EIO for a block that does not match
// its tree (a card that rotted after boot) and flags the device "C".
func (s *system) watchVerity() error {
	if s.cmdline.VerityRoot == nil {
		s.setVerity(status.Verity{State: status.VerityOff})
		return nil
	}
	root := hex.EncodeToString(s.cmdline.VerityRoot)
	corrupt, err := rootCorrupt()
	if err != nil {
		return err
	}
	s.setVerity(status.Verity{State: status.VerityVerified, RootHash: root})
	go func() {
		for !corrupt {
			time.Sleep(verityPoll)
			if corrupt, err = rootCorrupt(); err != nil {
				say.Printf("verity: %v", err)
				return
			}
		}
		s.verityCorrupt(root)
	}()
	return nil
}

// verityCorrupt reports a root that failed verification after boot. The
// slot stays up: it is the only one this device is known to boot (falling
// back to a slot on trial is for the A/B step that knows the trial state).
func (s *system) verityCorrupt(root string) {
	detail := fmt.Sprintf("a block of slot %s's root did not match its hash tree; reads of it fail with EIO; reflash or update this slot", s.cmdline.Slot)
	say.Printf("verity: ROOT CORRUPT: %s", detail)
	s.setVerity(status.Verity{State: status.VerityCorrupt, RootHash: root, Detail: detail})
}

func (s *system) setVerity(v status.Verity) {
	s.mu.Lock()
	s.verity = v
	s.mu.Unlock()
}

// rootCorrupt reads whether dm-verity flagged the root.
func rootCorrupt() (bool, error) {
	st, err := dm.Status(verity.MapperName)
	if err != nil {
		return false, err
	}
	if len(st) != 1 || st[0].Type != "verity" {
		return false, fmt.Errorf("%s: unexpected table %+v", verity.MapperName, st)
	}
	return st[0].Params == "C", nil
}
