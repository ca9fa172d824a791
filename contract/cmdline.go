package contract

import "strings"

// CmdlineFields splits a kernel command line into parameters as the kernel
// does: on whitespace outside double quotes, the quotes dropped
// (key="a b" is the one parameter `key=a b`). The builder writes the
// command line, stage 1 and the device config read it.
func CmdlineFields(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, inField := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			inField = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n'):
			if inField {
				out = append(out, cur.String())
				cur.Reset()
				inField = false
			}
		default:
			cur.WriteRune(r)
			inField = true
		}
	}
	if inField {
		out = append(out, cur.String())
	}
	return out
}
