package qemu

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestHubRepeats: a frame from one VM reaches every other VM, not itself.
func TestHubRepeats(t *testing.T) {
	h, err := NewHub()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var vms []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", h.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		vms = append(vms, c)
	}
	// The hub registers connections asynchronously.
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		n := len(h.conns)
		h.mu.Unlock()
		if n == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	frame := []byte("\xff\xff\xff\xff\xff\xff\x52\x54\x00\x00\x00\x01\x08\x06arp?")
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(frame)))
	if _, err := vms[0].Write(append(msg, frame...)); err != nil {
		t.Fatal(err)
	}
	for _, c := range vms[1:] {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(msg)+len(frame))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[4:], frame) {
			t.Errorf("frame %q", got)
		}
	}
	vms[0].SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _ := vms[0].Read(make([]byte, 1)); n != 0 {
		t.Error("the sender got its own frame back")
	}
}

func TestArgsHubNIC(t *testing.T) {
	b := board(t, "qemu-x86_64")
	a, err := args(&Config{Board: b, Net: Net{Hub: "127.0.0.1:4000", HubMAC: "52:54:00:b5:00:01"}}, plan{accel: TCG})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(a, " ")
	if !strings.Contains(line, "-netdev socket,id=hub0,connect=127.0.0.1:4000 -device virtio-net-pci,netdev=hub0,mac=52:54:00:b5:00:01") || strings.Contains(line, "-nic none") {
		t.Errorf("args: %s", line)
	}
}
