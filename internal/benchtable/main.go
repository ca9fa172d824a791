// Command benchtable reads `go test -bench` output on stdin and prints one
// table: each benchmark's ratios against the reference it measured in the
// same run (metrics whose unit ends in "-ratio"), then its other metrics.
//
//	go test -run '^$' -bench . ./... | go run ./internal/benchtable
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// module is trimmed from package paths in the table.
const module = "github.com/basaltos/basalt/"

type metric struct {
	unit  string
	value float64
}

type result struct {
	name    string
	metrics []metric
}

// parse returns the benchmark result lines of go test output, in order.
func parse(r io.Reader) ([]result, error) {
	var out []result
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "pkg: "); ok {
			pkg = strings.TrimPrefix(p, module) + " "
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		res := result{name: pkg + trimProcs(strings.TrimPrefix(f[0], "Benchmark"))}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			res.metrics = append(res.metrics, metric{unit: f[i+1], value: v})
		}
		out = append(out, res)
	}
	return out, sc.Err()
}

// trimProcs drops the -GOMAXPROCS suffix go test adds to names.
func trimProcs(name string) string {
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			return name[:i]
		}
	}
	return name
}

func write(w io.Writer, results []result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tratio vs reference\tvalue\tother metrics\t")
	for _, r := range results {
		var ratios, others []metric
		for _, m := range r.metrics {
			switch {
			case strings.HasSuffix(m.unit, "-ratio"):
				ratios = append(ratios, m)
			case m.unit != "ns/op" || len(r.metrics) == 1:
				others = append(others, m)
			}
		}
		sort.SliceStable(ratios, func(i, j int) bool { return ratios[i].unit < ratios[j].unit })
		var rest []string
		for _, m := range others {
			rest = append(rest, fmt.Sprintf("%s %s", strconv.FormatFloat(m.value, 'g', 4, 64), m.unit))
		}
		if len(ratios) == 0 {
			fmt.Fprintf(tw, "%s\t-\t-\t%s\t\n", r.name, strings.Join(rest, ", "))
			continue
		}
		for i, m := range ratios {
			name, extra := r.name, ""
			if i > 0 {
				name = ""
			} else {
				extra = strings.Join(rest, ", ")
			}
			fmt.Fprintf(tw, "%s\t%s\t%.3fx\t%s\t\n", name, strings.TrimSuffix(m.unit, "-ratio"), m.value, extra)
		}
	}
	return tw.Flush()
}

func main() {
	results, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	fmt.Println()
	fmt.Println("== make bench: basalt against references measured in the same run (ratio < 1: basalt is smaller/faster)")
	if err := write(os.Stdout, results); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}
