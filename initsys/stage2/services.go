package stage2

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/basaltos/basalt/contract"
	"github.com/basaltos/basalt/initsys/supervise"
)

// loadServices reads the services file; a missing file means none.
func loadServices(path string) ([]supervise.Service, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	return parseServices(path, data)
}

func parseServices(path string, data []byte) ([]supervise.Service, error) {
	var specs []contract.Service
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&specs); err != nil {
		return nil, fmt.Errorf("services %s: %w", path, err)
	}
	var out []supervise.Service
	seen := map[string]bool{}
	for i, s := range specs {
		if s.Name == "" || s.Path == "" {
			return nil, fmt.Errorf("services %s: entry %d: name and path are required", path, i)
		}
		if seen[s.Name] {
			return nil, fmt.Errorf("services %s: %s listed twice", path, s.Name)
		}
		seen[s.Name] = true
		r := supervise.Always
		if s.Restart != "" {
			var err error
			if r, err = supervise.ParseRestart(s.Restart); err != nil {
				return nil, fmt.Errorf("services %s: %s: %w", path, s.Name, err)
			}
		}
		svc := supervise.Service{Name: s.Name, Path: s.Path, Args: s.Args, Env: serviceEnv(s.Env), Restart: r, ReadyTimeout: time.Minute}
		switch {
		case s.ReadyFile != "":
			svc.Ready = supervise.FileCheck(s.ReadyFile)
		case len(s.ReadyExec) > 0:
			svc.Ready = supervise.ExecCheck(s.ReadyExec[0], s.ReadyExec[1:]...)
		}
		out = append(out, svc)
	}
	return out, nil
}

// serviceEnv is a service's environment: PATH and HOME, then extra.
func serviceEnv(extra []string) []string {
	return append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}, extra...)
}
