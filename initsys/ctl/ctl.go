// Package ctl holds the on-device commands of basalt-init: status, config
// reload, update apply, reboot and poweroff (sent to PID 1 as SIGTERM and SIGUSR2).
package ctl

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/basaltos/basalt/initsys/devconfig"
	"github.com/basaltos/basalt/initsys/status"
	"github.com/basaltos/basalt/initsys/update"
)

// Status prints PID 1's status.
func Status(w io.Writer) error {
	s, err := status.Query(status.Socket)
	if err != nil {
		return err
	}
	status.Format(w, s)
	return nil
}

// ConfigReload asks PID 1 to re-read and apply the device config and
// prints what it did; an invalid source is an error (nothing was applied).
func ConfigReload(w io.Writer) error {
	var r devconfig.ReloadResult
	if err := status.QueryJSON(status.ReloadSocket, time.Minute, &r); err != nil {
		return fmt.Errorf("config reload: %w", err)
	}
	fmt.Fprint(w, r.Summary())
	if r.Kept {
		return fmt.Errorf("config reload: invalid source, current config kept")
	}
	return nil
}

// Reboot asks PID 1 for an orderly reboot (SIGTERM).
func Reboot() error { return signalInit(syscall.SIGTERM, "reboot") }

// Poweroff asks PID 1 for an orderly poweroff (SIGUSR2).
func Poweroff() error { return signalInit(syscall.SIGUSR2, "poweroff") }

func signalInit(sig syscall.Signal, what string) error {
	if err := syscall.Kill(1, sig); err != nil {
		return fmt.Errorf("%s: signal PID 1: %w", what, err)
	}
	return nil
}

// UpdateApply asks PID 1 to apply the bundle at src (a file or an http(s)
// URL) into the other slot, and to reboot into it when reboot is set.
func UpdateApply(w io.Writer, src string, reboot bool) error {
	if !strings.Contains(src, "://") {
		abs, err := filepath.Abs(src)
		if err != nil {
			return err
		}
		src = abs
	}
	rep, err := update.Ask(update.Socket, update.Request{Source: src, Reboot: reboot}, time.Hour)
	if err != nil {
		return fmt.Errorf("update apply: %w", err)
	}
	if rep.Error != "" {
		return fmt.Errorf("update apply: %s", rep.Error)
	}
	fmt.Fprintf(w, "update: %s\n", rep.Status)
	if !reboot {
		fmt.Fprintln(w, "reboot to try it (basalt-init reboot); it is committed once healthy")
	}
	return nil
}
