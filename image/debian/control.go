package debian

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Paragraph is one stanza of a Debian control file (Packages, Release,
// DEBIAN/control, deb822 .sources): field name to value. A multi-line value
// keeps its continuation lines, each after a "\n", with the leading
// space removed.
type Paragraph map[string]string

// ParseParagraphs reads control-file stanzas from r (untrusted bytes) and
// calls fn for each. Field names are case-insensitive in Debian; they are
// kept as written and looked up as written (Debian writes them canonically).
func ParseParagraphs(r io.Reader, fn func(Paragraph) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	var p Paragraph
	last := ""
	line := 0
	flush := func() error {
		if len(p) == 0 {
			return nil
		}
		q := p
		p, last = nil, ""
		return fn(q)
	}
	for sc.Scan() {
		line++
		s := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(s) == "":
			if err := flush(); err != nil {
				return err
			}
		case s[0] == '#':
		case s[0] == ' ' || s[0] == '\t':
			if last == "" {
				return fmt.Errorf("line %d: continuation line outside a field", line)
			}
			p[last] += "\n" + s[1:]
		default:
			k, v, ok := strings.Cut(s, ":")
			k = strings.TrimSpace(k)
			if !ok || k == "" || strings.ContainsAny(k, " \t") {
				return fmt.Errorf("line %d: want \"Field: value\", got %q", line, truncate(s, 60))
			}
			if p == nil {
				p = Paragraph{}
			}
			p[k] = strings.TrimSpace(v)
			last = k
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("line %d: %w", line+1, err)
	}
	return flush()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// firstDepends returns the first alternative of each comma-separated
// relation in a Depends value, without version constraint or arch qualifier.
func firstDepends(v string) []string {
	var out []string
	for _, rel := range strings.Split(v, ",") {
		alt, _, _ := strings.Cut(rel, "|")
		alt = strings.TrimSpace(alt)
		if i := strings.IndexAny(alt, " (:["); i >= 0 {
			alt = alt[:i]
		}
		if alt != "" {
			out = append(out, alt)
		}
	}
	return out
}
