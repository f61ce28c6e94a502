package content

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"ddt/shared/chunk"
	"ddt/shared/id"
	"ddt/shared/node"
	"ddt/shared/wire"
)

// Serving limits.
const (
	// MaxServing is the transfers served to one peer at once; more are
	// answered ChunkBusy.
	MaxServing = 4
	// MaxServingTotal is the transfers served to all peers at once.
	MaxServingTotal = 16
	// sendStall bounds one frame's wait for room on a peer's bulk
	// channel: a peer that stops reading loses its transfer.
	sendStall = 15 * time.Second
	// maxBusyReplies bounds the ChunkBusy answers waiting to be sent to
	// one peer (each waits up to sendStall for room).
	maxBusyReplies = 4 * MaxServing
)

// framePool holds the buffers chunk data is read into for sending.
var framePool = sync.Pool{New: func() any { b := make([]byte, wire.MaxChunkData); return &b }}

// handleGet answers a ChunkGet. It runs on the peer's read loop, so the
// transfer goes to a goroutine of its own, if the peer and the node are
// within MaxServing and MaxServingTotal.
func (s *Service) handleGet(from node.PeerInfo, m *wire.ChunkGet) {
	p := from.Address
	s.mu.Lock()
	busy := s.serving[p] >= MaxServing || s.servingN >= MaxServingTotal
	if !busy {
		s.serving[p]++
		s.servingN++
	}
	s.mu.Unlock()
	if busy {
		// The answer may wait for room on p's bulk channel, so it goes to
		// a goroutine; at most maxBusyReplies of them per peer, so a peer
		// that floods asks and never reads cannot pile them up. Beyond,
		// the ask goes unanswered and the asker's stall deadline ends it.
		s.mu.Lock()
		answer := s.busyReplies[p] < maxBusyReplies
		if answer {
			s.busyReplies[p]++
		}
		s.mu.Unlock()
		if answer {
			go func() {
				s.done(p, m.ID, wire.ChunkBusy, fmt.Sprintf("this node serves %d transfers at once", MaxServingTotal))
				s.mu.Lock()
				if s.busyReplies[p]--; s.busyReplies[p] <= 0 {
					delete(s.busyReplies, p)
				}
				s.mu.Unlock()
			}()
		}
		return
	}
	go func() {
		defer func() {
			s.mu.Lock()
			if s.serving[p]--; s.serving[p] <= 0 {
				delete(s.serving, p)
			}
			s.servingN--
			s.mu.Unlock()
		}()
		s.serve(p, m)
	}()
}

// done sends the ChunkDone that ends the answer to ChunkGet id.
func (s *Service) done(p id.Address, id uint32, code uint8, detail string) {
	ctx, cancel := withClock(s.h.Life(), s.clk, sendStall)
	defer cancel()
	if err := s.h.SendBulk(ctx, p, &wire.ChunkDone{ID: id, Code: code, Detail: detail}); err != nil {
		s.log.Debug("could not end a transfer", "peer", p.Short(), "err", err)
	}
}

// serve streams the asked range of a chunk held here as ChunkData frames
// on p's bulk channel, each waiting for room (the receiver's
// back-pressure) at most sendStall, then a ChunkDone. The chunk is held
// while it is read, so it is not evicted halfway.
func (s *Service) serve(p id.Address, m *wire.ChunkGet) {
	h := chunk.Hash(m.Hash)
	release := s.lib.Hold(h)
	defer release()
	if !s.lib.Has(h) {
		s.done(p, m.ID, wire.ChunkNotFound, "this node does not hold that chunk")
		return
	}
	size, err := s.lib.Chunks().Size(h)
	if err != nil {
		s.done(p, m.ID, wire.ChunkNotFound, "this node does not hold that chunk")
		return
	}
	if int(m.Offset) > size {
		s.done(p, m.ID, wire.ChunkRefused, fmt.Sprintf("offset %d is beyond the chunk's %d bytes", m.Offset, size))
		return
	}
	// A length beyond the end reads to the end: a node asking for a
	// manifest does not know its size.
	end := min(size, int(m.Offset)+int(m.Length))
	bp := framePool.Get().(*[]byte)
	defer framePool.Put(bp)
	buf := *bp
	// Each frame waits for room at most sendStall, and the whole transfer
	// at most transferTime: a peer that reads a frame now and then cannot
	// hold a serving slot for ever.
	tctx, tcancel := withClock(s.h.Life(), s.clk, transferTime(end-int(m.Offset)))
	defer tcancel()
	for off := int(m.Offset); off < end; {
		k := min(len(buf), end-off)
		n, err := s.lib.ReadAt(h, buf[:k], int64(off))
		if n < k {
			s.log.Warn("could not read a chunk to serve it", "chunk", h.Short(), "err", err)
			s.done(p, m.ID, wire.ChunkNotFound, "this node could not read that chunk")
			return
		}
		if err != nil && err != io.EOF {
			s.done(p, m.ID, wire.ChunkNotFound, "this node could not read that chunk")
			return
		}
		ctx, cancel := withClock(tctx, s.clk, sendStall)
		err = s.h.SendBulk(ctx, p, &wire.ChunkData{ID: m.ID, Offset: uint32(off), Data: buf[:k]})
		cancel()
		if err != nil {
			s.log.Debug("a transfer ended", "peer", p.Short(), "chunk", h.Short(), "err", err)
			return
		}
		off += k
	}
	s.done(p, m.ID, wire.ChunkOK, "")
	s.rep.served(h)
}

// handleHave answers a ChunkHave.
func (s *Service) handleHave(ctx context.Context, from id.Address, m wire.Message) (wire.Message, error) {
	req := m.(*wire.ChunkHave)
	out := &wire.ChunkHas{Held: make([]bool, len(req.Hashes))}
	for i, h := range req.Hashes {
		out.Held[i] = s.lib.Has(h)
	}
	return out, nil
}
