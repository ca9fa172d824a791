package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRun: package lines and failing tests' output pass through, passing
// tests' chatter does not, the slowest come first, the counts close it, a
// failure exits 1.
func TestRun(t *testing.T) {
	in := `{"Action":"run","Package":"p","Test":"TestFast"}
{"Action":"output","Package":"p","Test":"TestFast","Output":"=== RUN   TestFast\n"}
{"Action":"pass","Package":"p","Test":"TestFast","Elapsed":0.1}
{"Action":"output","Package":"p","Test":"TestBad","Output":"    x_test.go:9: boom\n"}
{"Action":"fail","Package":"p","Test":"TestBad","Elapsed":2}
{"Action":"pass","Package":"p","Test":"TestSlow","Elapsed":30.5}
{"Action":"output","Package":"p","Output":"FAIL\tp\t33.0s\n"}
{"Action":"fail","Package":"p","Elapsed":33}
`
	var out bytes.Buffer
	if code := run(strings.NewReader(in), &out); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	got := out.String()
	want := "    x_test.go:9: boom\nFAIL\tp\t33.0s\n\n== slowest tests\n     30.5s  p TestSlow\n        2s  p TestBad\n      100ms  p TestFast\n"
	if !strings.Contains(got, "boom") || strings.Contains(got, "=== RUN") || !strings.Contains(got, "30.5s  p TestSlow\n        2s  p TestBad") {
		t.Errorf("output:\n%s\nwant like:\n%s", got, want)
	}
	if !strings.HasSuffix(got, "\n2 passed, 1 failed, 0 skipped\n") {
		t.Errorf("output does not end with the count line:\n%s", got)
	}
}
