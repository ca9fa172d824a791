package update

import (
	"context"
	"fmt"
	"time"

	"github.com/basaltos/basalt/contract/ab"
	"github.com/basaltos/basalt/initsys/boot"
)

// Gate is the health gate a trial boot commits on: ok, or why not.
type Gate func() (ok bool, why string)

// GateOptions bound the health gate.
type GateOptions struct {
	// Timeout: not healthy by then, the trial gives up (reboot).
	Timeout time.Duration
	// Poll is the interval between checks; the gate passes when two
	// checks in a row pass.
	Poll time.Duration
}

// AfterBoot looks at the A/B state once the boot sequence is done: a trial
// boot runs the health gate (in the background) and commits or reboots; a
// boot the loader fell back to records the rolled-back version and why.
func (u *Updater) AfterBoot(ctx context.Context, gate Gate, g GateOptions, reboot func()) error {
	var st ab.State
	var versions map[string]string
	var fails []ab.Failure
	unreadable := false
	if err := u.withBoot(func(d ab.Dir) (err error) {
		if fails, err = ab.ReadFailures(d); err != nil {
			u.logf("%v (clearing it)", err)
			unreadable = true
		}
		st, err = u.mech.State(d, u.env())
		versions = slotVersions(d)
		return err
	}); err != nil {
		return err
	}
	// Stage 1 refused a slot and fell back (ab.FailureFile): said once
	// here, kept in the status as the rollback's reason, then cleared.
	for _, f := range fails {
		u.logf("slot %s failed at boot: %s", f.Slot, f.Reason)
	}
	u.set(func(r *record) { r.Status.AB, r.Status.Slots = st.String(), versions }, false)
	running := u.d.Release["VERSION"]
	switch {
	case st.OnTrial:
		u.setPhase(Trial, running, u.d.Booted, fmt.Sprintf("health gate running (%s, %d tries left)", g.Timeout, st.TriesLeft))
		u.logf("slot %s (%s) booted on trial: health gate, %s", u.d.Booted, running, g.Timeout)
		go u.gate(ctx, gate, g, running, reboot)
	case st.Failed != "":
		failed := versions[string(st.Failed)]
		u.mu.Lock()
		reason := u.rec.TrialReason
		if u.rec.TrialVersion != failed || reason == "" {
			reason = fmt.Sprintf("slot %s never passed its health gate and left no reason: its kernel, stage 1 or the power failed on every try", st.Failed)
		}
		u.mu.Unlock()
		for _, f := range fails {
			if f.Slot == st.Failed {
				reason = f.Reason
			}
		}
		u.set(func(r *record) {
			r.Status.FailedVersion, r.Status.FailedReason = failed, reason
			r.TrialVersion, r.TrialReason = "", ""
		}, false)
		u.setPhase(RolledBack, failed, st.Failed, reason)
		u.logf("rolled back from %s (slot %s): %s; running %s in slot %s", failed, st.Failed, reason, running, u.d.Booted)
		// The failed slot's entry or trial goes: the loader stops counting it.
		if err := u.withBoot(func(d ab.Dir) error { return u.mech.Disarm(d, st.Failed) }); err != nil {
			return err
		}
	}
	if len(fails) > 0 || unreadable {
		if err := u.withBoot(ab.ClearFailures); err != nil {
			return err
		}
	}
	return u.Refresh()
}

// gate polls the health gate until it passes twice in a row (commit) or
// the timeout (record why, reboot: the loader counts the try).
func (u *Updater) gate(ctx context.Context, gate Gate, g GateOptions, version string, reboot func()) {
	deadline := time.Now().Add(g.Timeout)
	passes, why := 0, "not checked yet"
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var ok bool
		ok, why = gate()
		if ok {
			passes++
		} else {
			passes = 0
		}
		if passes >= 2 {
			if err := u.Commit(); err != nil {
				u.logf("commit failed: %v", err)
				why = "commit failed: " + err.Error()
				break
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(g.Poll):
		}
	}
	reason := fmt.Sprintf("health gate did not pass within %s: %s", g.Timeout, why)
	u.set(func(r *record) { r.TrialVersion, r.TrialReason = version, reason }, false)
	u.setPhase(Failed, version, u.d.Booted, reason)
	u.logf("%s; rebooting (the bootloader counts this try)", reason)
	reboot()
}

// Commit makes the slot booted on trial the committed slot.
func (u *Updater) Commit() error {
	u.op.Lock()
	defer u.op.Unlock()
	version := u.d.Release["VERSION"]
	_, err := boot.Sequence{Name: "update", Steps: []boot.Step{{Name: "commit", Essential: true, Run: func() error {
		return u.withBoot(func(d ab.Dir) error { return u.mech.Commit(d, u.env()) })
	}}}}.Run()
	if err != nil {
		return err
	}
	u.set(func(r *record) { r.TrialVersion, r.TrialReason = "", "" }, false)
	rerr := u.Refresh()
	u.setPhase(Committed, version, u.d.Booted, "health gate passed")
	u.logf("committed %s in slot %s: health gate passed", version, u.d.Booted)
	return rerr
}
