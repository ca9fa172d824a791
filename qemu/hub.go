package qemu

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
)

// Hub is a private Ethernet segment between VMs on 127.0.0.1: each VM's NIC
// is a QEMU socket netdev connected to the hub (Net.Hub), which speaks
// QEMU's stream framing (a 4-byte big-endian length, then the frame) and
// repeats every frame to every other VM, like an Ethernet hub. Nothing on
// the segment reaches the host's network.
type Hub struct {
	ln net.Listener

	mu    sync.Mutex
	conns map[net.Conn]*sync.Mutex // per connection: one writer at a time
}

// maxFrame bounds a frame (jumbo frames included); a bigger length is a
// broken peer, which is dropped.
const maxFrame = 65536 + 4

// NewHub listens on a free port of 127.0.0.1.
func NewHub() (*Hub, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &Hub{ln: ln, conns: map[net.Conn]*sync.Mutex{}}
	go h.accept()
	return h, nil
}

// Addr is the hub's address, for Net.Hub.
func (h *Hub) Addr() string { return h.ln.Addr().String() }

// Close stops the hub and drops every VM's connection.
func (h *Hub) Close() error {
	err := h.ln.Close()
	h.mu.Lock()
	for c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
	return err
}

func (h *Hub) accept() {
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		h.conns[c] = &sync.Mutex{}
		h.mu.Unlock()
		go h.repeat(c)
	}
}

// repeat reads c's frames and writes each to the other connections.
func (h *Hub) repeat(c net.Conn) {
	defer func() {
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
		c.Close()
	}()
	buf := make([]byte, 4+maxFrame)
	for {
		if _, err := io.ReadFull(c, buf[:4]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(buf[:4])
		if n > maxFrame {
			return
		}
		if _, err := io.ReadFull(c, buf[4:4+n]); err != nil {
			return
		}
		h.mu.Lock()
		for o, wmu := range h.conns {
			if o == c {
				continue
			}
			wmu.Lock()
			o.Write(buf[:4+n]) // a slow or dead peer loses frames, as on a wire
			wmu.Unlock()
		}
		h.mu.Unlock()
	}
}
