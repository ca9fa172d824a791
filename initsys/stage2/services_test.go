package stage2

import (
	"strings"
	"testing"
)

func TestParseServices(t *testing.T) {
	tests := []struct {
		name, yaml, wantErr string
		wantN               int
	}{
		{"ok", "- name: crasher\n  path: /usr/bin/crasher\n  restart: always\n- name: setup\n  path: /bin/setup\n  restart: once\n  ready_file: /run/setup.done\n", "", 2},
		{"unknown key", "- name: a\n  path: /a\n  restrat: once\n", "field restrat not found", 0},
		{"bad policy", "- name: a\n  path: /a\n  restart: sometimes\n", "want always, on-failure or once", 0},
		{"duplicate", "- name: a\n  path: /a\n- name: a\n  path: /b\n", "listed twice", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseServices("services.yaml", []byte(tc.yaml))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != tc.wantN {
				t.Errorf("got %d services, %v", len(got), err)
			}
		})
	}
}
