package debian

import (
	"bytes"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// keyringGPG holds the Debian 12 (bookworm) and 13 (trixie) archive
// signing keys: the automatic, security-automatic and stable release keys
// of each, copied from debian-archive-keyring's (2023.3+deb12u2)
// debian-archive-{bookworm,trixie}-*.gpg. trixie's InRelease is signed by
// the trixie keys only.
//
//go:embed keyring.gpg
var keyringGPG []byte

// DebianKeyring returns the embedded Debian archive keys.
func DebianKeyring() (openpgp.EntityList, error) {
	return openpgp.ReadKeyRing(bytes.NewReader(keyringGPG))
}

// Release is the verified content of a suite's InRelease file.
type Release struct {
	Suite, Codename string
	// Components are the archive areas the suite has ("main contrib
	// non-free-firmware non-free"), as listed; "" when not listed.
	Components    string
	Date          time.Time
	ValidUntil    time.Time // zero when the suite sets none
	AcquireByHash bool
	// Files maps an index path (main/binary-amd64/Packages.xz) to its size and sha256.
	Files map[string]FileSum
}

// FileSum is a size and sha256 from a Release file.
type FileSum struct {
	Size   int64
	SHA256 string
}

// VerifyInRelease checks the clearsigned InRelease data against keyring at
// time now (signature and key expiry, Date not in the future, Valid-Until
// not passed, Suite or Codename equal to suite) and parses it. name names
// the file in errors.
func VerifyInRelease(data []byte, keyring openpgp.KeyRing, now time.Time, suite, name string) (*Release, error) {
	block, _ := clearsign.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: not an OpenPGP clearsigned file (unsigned InRelease)", name)
	}
	cfg := &packet.Config{Time: func() time.Time { return now }}
	if _, err := block.VerifySignature(keyring, cfg); err != nil {
		return nil, fmt.Errorf("%s: signature not valid with the archive keyring: %w", name, err)
	}
	var p Paragraph
	if err := ParseParagraphs(bytes.NewReader(block.Plaintext), func(q Paragraph) error {
		if p == nil {
			p = q
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if p == nil {
		return nil, fmt.Errorf("%s: empty", name)
	}
	rel := &Release{Suite: p["Suite"], Codename: p["Codename"], Components: p["Components"], AcquireByHash: p["Acquire-By-Hash"] == "yes", Files: map[string]FileSum{}}
	if suite != rel.Suite && suite != rel.Codename {
		return nil, fmt.Errorf("%s: is for suite %q (codename %q), want %q", name, rel.Suite, rel.Codename, suite)
	}
	var err error
	if rel.Date, err = parseDate(p["Date"]); err != nil {
		return nil, fmt.Errorf("%s: Date: %w", name, err)
	}
	if rel.Date.After(now.Add(10 * time.Minute)) {
		return nil, fmt.Errorf("%s: Date %s is in the future (clock now %s)", name, rel.Date.Format(time.RFC1123), now.UTC().Format(time.RFC1123))
	}
	if v, ok := p["Valid-Until"]; ok {
		if rel.ValidUntil, err = parseDate(v); err != nil {
			return nil, fmt.Errorf("%s: Valid-Until: %w", name, err)
		}
		if now.After(rel.ValidUntil) {
			return nil, fmt.Errorf("%s: expired: Valid-Until %s is past (clock now %s)", name, v, now.UTC().Format(time.RFC1123))
		}
	}
	for _, l := range strings.Split(p["SHA256"], "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			continue
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: SHA256 line %q: %w", name, l, err)
		}
		rel.Files[f[2]] = FileSum{Size: size, SHA256: f[0]}
	}
	return rel, nil
}

func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC1123, time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 MST", "Mon, 2 Jan 2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bad date %q", s)
}
