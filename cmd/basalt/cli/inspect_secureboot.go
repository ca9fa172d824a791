package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/image/fat"
	"github.com/basaltos/basalt/image/secureboot"
)

// slotUKI reads slot's unified kernel image (Secure Boot images); ok is
// false when the slot has none.
func slotUKI(boot *fat.FS, slot contract.Slot) ([]byte, bool) {
	b, err := boot.ReadFile(contract.SlotDir(slot) + "/" + contract.UKIFile)
	return b, err == nil
}

// ukiSigners says who signed a UKI: each certificate's subject and the
// sha256 of its DER (what to compare with the db certificate), or
// "UNSIGNED".
func ukiSigners(uki []byte) string {
	sigs, err := secureboot.Signatures(uki)
	if err != nil {
		return "unreadable: " + err.Error()
	}
	if len(sigs) == 0 {
		return "UNSIGNED"
	}
	var who []string
	for _, s := range sigs {
		certs, err := secureboot.Certificates(s)
		if err != nil {
			return "unreadable signature: " + err.Error()
		}
		for _, c := range certs {
			sum := sha256.Sum256(c.Raw)
			who = append(who, fmt.Sprintf("%q (cert sha256 %s)", c.Subject.String(), hex.EncodeToString(sum[:])))
		}
	}
	return "signed by " + strings.Join(who, ", ")
}
