package debian

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseParagraphs(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Paragraph
		wantErr  string
	}{
		{"two stanzas", "Package: a\nVersion: 1\n\nPackage: b\nDescription: x\n more\n .\n end\n",
			[]Paragraph{{"Package": "a", "Version": "1"}, {"Package": "b", "Description": "x\nmore\n.\nend"}}, ""},
		{"comments and blank lines, CRLF", "# c\n\n\nTypes: deb\r\nURIs: http://x\r\n\n\n", []Paragraph{{"Types": "deb", "URIs": "http://x"}}, ""},
		{"multiline field first line empty", "SHA256:\n abc 1 f\n def 2 g\n", []Paragraph{{"SHA256": "\nabc 1 f\ndef 2 g"}}, ""},
		{"continuation first", " oops\n", nil, "line 1: continuation line outside a field"},
		{"no colon", "Package a\n", nil, "line 1: want \"Field: value\""},
		{"empty", "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Paragraph
			err := ParseParagraphs(strings.NewReader(tt.in), func(p Paragraph) error {
				got = append(got, p)
				return nil
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestFirstDepends(t *testing.T) {
	got := firstDepends("linux-image-6.1.0-28-cloud-amd64 (= 6.1.119-1), initramfs-tools | linux-initramfs-tool, foo:any [amd64]")
	want := []string{"linux-image-6.1.0-28-cloud-amd64", "initramfs-tools", "foo"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

// FuzzParsePackages feeds untrusted Packages bytes to the parser the
// resolver uses.
func FuzzParsePackages(f *testing.F) {
	f.Add("Package: a\nVersion: 1\nFilename: pool/a.deb\nSize: 3\nSHA256: " + strings.Repeat("a", 64) + "\n\n")
	f.Add("Package: b\nDescription: x\n more\n")
	f.Add(" x\n")
	f.Add("Package: a\nFilename: ../../etc\nSize: -1\nSHA256: z\n")
	f.Fuzz(func(t *testing.T, in string) {
		idx := &suiteIndex{pkgs: map[string][]Package{}}
		if err := parsePackages(strings.NewReader(in), Source{}, idx); err != nil {
			return
		}
		for _, ps := range idx.pkgs {
			for _, p := range ps {
				if strings.Contains(p.Filename, "..") || len(p.SHA256) != 64 {
					t.Fatalf("accepted bad stanza %+v", p)
				}
			}
		}
	})
}
