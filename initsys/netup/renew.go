package netup

import (
	"context"
	"errors"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/basaltos/basalt/initsys/say"
)

// leaseClient is what lease renewal needs from a DHCPv4 client.
type leaseClient interface {
	// Renew asks the server that gave the lease to extend it (RENEWING).
	Renew(ctx context.Context, l *nclient4.Lease) (*nclient4.Lease, error)
	// Rebind asks any server to extend it (REBINDING).
	Rebind(ctx context.Context, l *nclient4.Lease) (*nclient4.Lease, error)
	// Request gets a new lease (DISCOVER, REQUEST).
	Request(ctx context.Context) (*nclient4.Lease, error)
}

// client4 is leaseClient on nclient4.
type client4 struct{ *nclient4.Client }

func (c client4) Renew(ctx context.Context, l *nclient4.Lease) (*nclient4.Lease, error) {
	return c.Client.Renew(ctx, l)
}

func (c client4) Request(ctx context.Context) (*nclient4.Lease, error) { return c.Client.Request(ctx) }

// Rebind sends the renewal request (ciaddr set, no server identifier) and
// accepts an ACK from any server, as RFC 2131 4.4.5 says.
func (c client4) Rebind(ctx context.Context, l *nclient4.Lease) (*nclient4.Lease, error) {
	req, err := dhcpv4.NewRenewFromAck(l.ACK)
	if err != nil {
		return nil, err
	}
	resp, err := c.SendAndRead(ctx, c.RemoteAddr(), req, nclient4.IsMessageType(dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak))
	if err != nil {
		return nil, err
	}
	if resp.MessageType() == dhcpv4.MessageTypeNak {
		return nil, &nclient4.ErrNak{Offer: l.Offer, Nak: resp}
	}
	return &nclient4.Lease{Offer: l.Offer, ACK: resp, CreationTime: time.Now()}, nil
}

// leaseTimes are a lease's renewal (T1) and rebinding (T2) times and its
// length, with RFC 2131's defaults (T1 = lease/2, T2 = lease*7/8).
func leaseTimes(ack *dhcpv4.DHCPv4) (t1, t2, lt time.Duration) {
	lt = ack.IPAddressLeaseTime(time.Hour)
	t1 = ack.IPAddressRenewalTime(lt / 2)
	t2 = ack.IPAddressRebindingTime(lt * 7 / 8)
	if t2 > lt || t2 < t1 {
		t2 = lt * 7 / 8
	}
	if t1 > t2 {
		t1 = t2
	}
	return t1, t2, lt
}

// renewal keeps a DHCPv4 lease: from T1 it renews with the server that
// gave it, from T2 it rebinds with any server, once the lease has run out
// it asks for a new one; failed attempts are retried every Retry (shorter
// when the next phase comes sooner). Each new lease goes to Apply.
type renewal struct {
	Client leaseClient
	Apply  func(*nclient4.Lease) error
	Link   string // the interface, for the log lines
	Retry  time.Duration
	// Now and Sleep are the clock (time.Now, sleep); tests pass fakes.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) bool
}

// run keeps lease (obtained at Now) until ctx ends.
func (r *renewal) run(ctx context.Context, lease *nclient4.Lease) {
	got := r.Now()
	for {
		t1, t2, lt := leaseTimes(lease.ACK)
		if !r.Sleep(ctx, t1-r.Now().Sub(got)) {
			return
		}
		for {
			el := r.Now().Sub(got)
			phase, next := "renew", t2
			var nl *nclient4.Lease
			var err error
			switch {
			case el < t2:
				nl, err = r.Client.Renew(ctx, lease)
			case el < lt:
				phase, next = "rebind", lt
				nl, err = r.Client.Rebind(ctx, lease)
			default:
				phase, next = "request", 0
				nl, err = r.Client.Request(ctx)
			}
			if err == nil {
				err = r.Apply(nl)
				if err == nil {
					lease, got = nl, r.Now()
					break
				}
			}
			if errors.Is(err, context.Canceled) || ctx.Err() != nil {
				return
			}
			wait := r.Retry
			if left := next - r.Now().Sub(got); next > 0 && left > 0 && left < wait {
				wait = left
			}
			say.Printf("%s: dhcp4 %s: %v; retry in %v", r.Link, phase, err, wait)
			if !r.Sleep(ctx, wait) {
				return
			}
		}
	}
}
