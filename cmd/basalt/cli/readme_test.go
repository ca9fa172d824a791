package cli

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeCommands returns the command lines of README.md's sh code blocks,
// comments and continuation lines folded.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	in, cont := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "```sh"):
			in = true
			continue
		case strings.HasPrefix(line, "```"):
			in = false
			continue
		}
		if !in {
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cont += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cmds = append(cmds, cont+line)
		cont = ""
	}
	return cmds
}

// TestReadmeCommandsExist keeps README.md honest: every basalt command it
// shows exists with the flags it uses, and every make target is defined.
// (The e2e tour test runs the tour for real.)
func TestReadmeCommandsExist(t *testing.T) {
	mk, err := os.ReadFile("../../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	cmds := readmeCommands(t)
	if len(cmds) == 0 {
		t.Fatal("README.md has no sh code blocks")
	}
	for _, c := range cmds {
		f := strings.Fields(c)
		switch {
		case f[0] == "make":
			for _, target := range f[1:] {
				if strings.Contains(target, "=") {
					continue
				}
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).Match(mk) {
					t.Errorf("README: %q: no make target %q", c, target)
				}
			}
		case f[0] == "basalt" || strings.HasSuffix(f[0], "/basalt"):
			root := newRootCmd()
			cmd, rest, err := root.Find(f[1:])
			if err != nil || cmd == root {
				t.Errorf("README: %q: no such basalt command (%v)", c, err)
				continue
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("README: %q: %v", c, err)
			}
		}
	}
}
