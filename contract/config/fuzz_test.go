package config

import (
	"os"
	"testing"
)

func addSeeds(f *testing.F) {
	for _, p := range []string{"testdata/full.yaml", "testdata/cloudinit-users.yaml", "testdata/cloudinit-write-files.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("#cloud-config\nx: &a [*a]\n"))
	f.Add([]byte(head + "<<: {hostname: a}\n"))
	f.Add([]byte("#cloud-config\nusers: [default, 1, {name: x, groups: 'a,b'}]\n"))
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		d, _, err := Parse("f", data)
		if err == nil && d == nil {
			t.Fatal("nil document without error")
		}
		if d != nil {
			_ = d.Config.Redacted()
		}
	})
}

// FuzzMerge parses the input as two halves and merges them both ways;
// the merged config must validate without panicking and re-parse.
func FuzzMerge(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		a, _, errA := Parse("a", data[:len(data)/2])
		b, _, errB := Parse("b", data[len(data)/2:])
		if errA != nil || errB != nil {
			a, _, errA = Parse("a", data)
			if errA != nil {
				return
			}
			b = a
		}
		for _, m := range []*Merged{Merge(a, b), Merge(b, a)} {
			_ = m.Validate()
			_ = m.Warnings()
			_ = m.Config.EffectiveUsers()
			out, err := MarshalDocument(&m.Config)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := Parse("merged", out); err != nil {
				t.Fatalf("merged config does not re-parse: %v\n%s", err, out)
			}
		}
	})
}
