package contract

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReleaseRoundTrip(t *testing.T) {
	want := Release{Name: "edge", Version: "1.2.3", Board: "qemu-x86_64", Arch: "amd64", Kernel: "6.12.1-cloud-amd64", BuildEpoch: 1700000000,
		More: []KeyValue{{"AB", "bls"}, {"ORCHESTRATOR", "none"}}}
	got, err := ParseRelease(want.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if _, err := ParseRelease([]byte("BUILD_EPOCH=soon\n")); err == nil {
		t.Error("a malformed BUILD_EPOCH parsed")
	}
	if got.Get("AB") != "bls" || got.Get("NONE") != "" {
		t.Errorf("Get: %+v", got)
	}
	got, err = ParseRelease([]byte("# comment\nVERSION=\"2\"\nFUTURE=key\n"))
	if diff := cmp.Diff(Release{Version: "2", More: []KeyValue{{"FUTURE", "key"}}}, got); err != nil || diff != "" {
		t.Errorf("quoted value, other key (-want +got), %v:\n%s", err, diff)
	}
}

// FuzzParseRelease: the file comes from a slot root, which an update
// replaces; what parses must marshal and parse to the same.
func FuzzParseRelease(f *testing.F) {
	f.Add(Release{Name: "n", Version: "v", BuildEpoch: 1}.Marshal())
	f.Add([]byte("BUILD_EPOCH=\"-1\"\nKERNEL=x=y\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRelease(b)
		if err != nil {
			return
		}
		r2, err := ParseRelease(r.Marshal())
		if err != nil || (!cmp.Equal(r2, r) && !quoteOrCR(r)) {
			t.Errorf("%+v -> %q -> %+v, %v", r, r.Marshal(), r2, err)
		}
	})
}

// quoteOrCR: a value with a quote (trimmed at its ends by a parse) or a
// carriage return (a line break to the scanner) may re-parse differently;
// other values must not.
func quoteOrCR(r Release) bool {
	vs := []string{r.Name, r.Version, r.Board, r.Arch, r.Kernel}
	for _, kv := range r.More {
		vs = append(vs, kv.Key, kv.Value)
	}
	for _, v := range vs {
		for _, c := range v {
			if c == '\r' || c == '"' {
				return true
			}
		}
	}
	return false
}
