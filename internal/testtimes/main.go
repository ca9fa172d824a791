// Command testtimes reads `go test -json` on stdin, prints what plain
// `go test` prints (package results, and the output of failing tests and
// failed builds), then the slowest tests, so that a slow suite says where
// its time goes. It exits 1 when anything failed.
//
//	go test -json ./... | go run ./internal/testtimes
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of test2json's output.
type event struct {
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string
}

// slowest is how many tests the summary lists.
const slowest = 15

func main() { os.Exit(run(os.Stdin, os.Stdout)) }

type result struct {
	name    string
	elapsed float64
}

func run(in io.Reader, out io.Writer) int {
	buf := map[string]*strings.Builder{} // output per package and test
	var results []result
	failed := false
	counts := map[string]int{} // pass, fail, skip of top-level tests
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(out, sc.Text()) // not JSON: pass it on
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
		case "build-fail":
			failed = true
		case "output":
			if e.Test == "" {
				// Package lines: "ok ...", "FAIL ...", panics; not -v chatter.
				if !strings.HasPrefix(e.Output, "=== ") && !strings.HasPrefix(e.Output, "--- PASS") &&
					strings.TrimSpace(e.Output) != "PASS" {
					fmt.Fprint(out, e.Output)
				}
				continue
			}
			if buf[key] == nil {
				buf[key] = &strings.Builder{}
			}
			buf[key].WriteString(e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				if e.Action == "fail" {
					failed = true
				}
				continue
			}
			if e.Action == "fail" {
				failed = true
				if b := buf[key]; b != nil {
					fmt.Fprint(out, b.String())
				}
			}
			delete(buf, key)
			if strings.Contains(e.Test, "/") {
				continue
			}
			counts[e.Action]++
			if e.Action != "skip" {
				results = append(results, result{e.Package + " " + e.Test, e.Elapsed})
			}
		}
	}
	sort.SliceStable(results, func(i, j int) bool { return results[i].elapsed > results[j].elapsed })
	if len(results) > 0 {
		fmt.Fprintf(out, "\n== slowest tests\n")
		for _, r := range results[:min(slowest, len(results))] {
			fmt.Fprintf(out, "  %8s  %s\n", time.Duration(r.elapsed*float64(time.Second)).Round(100*time.Millisecond), r.name)
		}
	}
	// The plain closing line CI readers look for (top-level tests only).
	fmt.Fprintf(out, "\n%d passed, %d failed, %d skipped\n", counts["pass"], counts["fail"], counts["skip"])
	if failed {
		return 1
	}
	return 0
}
