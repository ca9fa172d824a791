package secureboot

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Files of a Secure Boot key directory (`basalt keygen --secure-boot -o
// DIR`; the spec's secureBoot.dir). The build signs with db; the .auth
// files are what the image carries for systemd-boot to enroll.
const (
	DBKeyFile  = "db.key"
	DBCertFile = "db.crt"
)

// AuthFiles are the enrollment files, in the order systemd-boot writes
// them (PK last: that leaves setup mode).
var AuthFiles = []string{"db.auth", "KEK.auth", "PK.auth"}

// KeyFile is one file of a generated key directory.
type KeyFile struct {
	Name   string
	Data   []byte
	Secret bool // a private key: mode 0600
}

// KeySet generates PK, KEK and db (RSA-2048, self-signed certificates
// named after name) and their enrollment material: NAME.key, NAME.crt,
// NAME.esl (the EFI signature list of the certificate) and NAME.auth (the
// list as a time-based authenticated write at now: PK and KEK signed by
// PK, db by KEK, as the UEFI key hierarchy wants).
func KeySet(name string, now time.Time) ([]KeyFile, error) {
	u := uuid.New() // the signature owner: one random GUID per key set
	owner := GUID{A: binary.BigEndian.Uint32(u[0:]), B: binary.BigEndian.Uint16(u[4:]), C: binary.BigEndian.Uint16(u[6:])}
	copy(owner.D[:], u[8:])
	keys := map[string]*Signer{}
	var out []KeyFile
	for _, n := range []string{"PK", "KEK", "db"} {
		s, err := Generate(fmt.Sprintf("%s %s", name, n), now)
		if err != nil {
			return nil, err
		}
		keys[n] = s
		kp, err := s.KeyPEM()
		if err != nil {
			return nil, err
		}
		out = append(out, KeyFile{Name: n + ".key", Data: kp, Secret: true}, KeyFile{Name: n + ".crt", Data: s.CertPEM()})
	}
	for _, v := range []struct {
		v      Var
		signer string
	}{{PK, "PK"}, {KEK, "PK"}, {DB, "KEK"}} {
		esl := SignatureList(keys[v.v.Name].Cert, owner)
		auth, err := AuthVar(v.v, esl, now, keys[v.signer])
		if err != nil {
			return nil, err
		}
		out = append(out, KeyFile{Name: v.v.Name + ".esl", Data: esl}, KeyFile{Name: v.v.Name + ".auth", Data: auth})
	}
	return out, nil
}
