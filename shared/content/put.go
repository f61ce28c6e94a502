package content

import (
	"context"
	"errors"
	"io"
	"slices"

	"ddt/shared/chunk"
	"ddt/shared/node"
)

// PutOptions shape a Put or a Publish.
type PutOptions struct {
	Name string // the file name the manifest carries (at most chunk.MaxName bytes)
	Type string // its media type (at most chunk.MaxType bytes)
	// Unicast content (for one reader) gets at most one replica.
	Unicast bool
	// Progress, if set, is told how the put goes, at most every 100 ms.
	Progress func(Progress)
}

// Put reads r to its end (size bytes, or -1 if unknown), chunk by chunk
// into 4 MiB buffers, stores it as this node's own content, pinned,
// announces this node as its provider and returns its content id. Its
// replicas are placed afterwards, in the background (EventReplicas says
// how many).
func (s *Service) Put(ctx context.Context, r io.Reader, size int64, o PutOptions) (chunk.Hash, error) {
	if s.lib == nil {
		return chunk.Hash{}, node.Errorf(node.CodeNotAdmitted, nil, "the content service is not attached to a node")
	}
	if size > chunk.MaxContent {
		return chunk.Hash{}, node.Errorf(node.CodeInvalid, nil, "%d bytes is more than one content may hold (%d)", size, chunk.MaxContent)
	}
	m := &chunk.Manifest{Name: o.Name, Type: o.Type, ChunkSize: chunk.MaxSize}
	if err := m.Check(); err != nil { // empty so far: the name and type
		return chunk.Hash{}, node.Errorf(node.CodeInvalid, []error{err}, "%v", err)
	}
	prog := newProgress(s, o.Progress)
	bp, err := chunkPool.get(ctx)
	if err != nil {
		return chunk.Hash{}, boundary(ctx, err)
	}
	defer chunkPool.put(bp)
	var holds []func()
	published := false
	defer func() {
		if !published {
			s.lib.Unown(m.Chunks...) // what a failed put stored is cache, not pinned for good
		}
		for _, f := range holds {
			f()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return chunk.Hash{}, boundary(ctx, err)
		}
		n, err := io.ReadFull(r, *bp)
		if n > 0 {
			data := (*bp)[:n]
			h, herr := chunk.Sum(data)
			if herr != nil {
				return chunk.Hash{}, boundary(ctx, herr)
			}
			holds = append(holds, s.lib.Hold(h))
			if perr := s.lib.Put(h, data, Own, o.Type); perr != nil {
				return chunk.Hash{}, boundary(ctx, perr)
			}
			m.Chunks = append(m.Chunks, h)
			m.Size += int64(n)
			if m.Size > chunk.MaxContent {
				return chunk.Hash{}, node.Errorf(node.CodeInvalid, nil, "more bytes than one content may hold (%d)", chunk.MaxContent)
			}
			prog.report("storing", m.Size, size, 0, len(m.Chunks), len(m.Chunks), false)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return chunk.Hash{}, boundary(ctx, err)
		}
	}
	if size >= 0 && m.Size != size {
		return chunk.Hash{}, node.Errorf(node.CodeInvalid, nil, "%d bytes were said, %d came", size, m.Size)
	}
	id, err := s.publish(ctx, m, o, prog)
	published = err == nil
	return id, err
}

// Publish makes content of chunks the platform already stored and
// adopted into the Library (a browser that hashed and stored a Blob
// itself): it checks they are held, then does what Put does after
// storing.
func (s *Service) Publish(ctx context.Context, size int64, chunks []chunk.Hash, o PutOptions) (chunk.Hash, error) {
	if s.lib == nil {
		return chunk.Hash{}, node.Errorf(node.CodeNotAdmitted, nil, "the content service is not attached to a node")
	}
	m := &chunk.Manifest{Name: o.Name, Type: o.Type, Size: size, ChunkSize: chunk.MaxSize, Chunks: chunks}
	if err := m.Check(); err != nil {
		return chunk.Hash{}, node.Errorf(node.CodeInvalid, []error{err}, "%v", err)
	}
	for i, h := range chunks {
		sz, err := s.lib.Chunks().Size(h)
		if err != nil || !s.lib.Has(h) {
			return chunk.Hash{}, node.Errorf(node.CodeInvalid, nil, "chunk %d (%s) is not stored here", i, h.Short())
		}
		if sz != m.ChunkLen(i) {
			return chunk.Hash{}, node.Errorf(node.CodeInvalid, nil, "chunk %d is %d bytes, %d expected", i, sz, m.ChunkLen(i))
		}
	}
	release := s.lib.Hold(chunks...) // until the pin in publish makes them Own
	defer release()
	return s.publish(ctx, m, o, newProgress(s, o.Progress))
}

// publish stores m's encoding, pins the content, announces this node as
// its provider (the whole, now; each chunk, in the background) and
// starts its replication.
func (s *Service) publish(ctx context.Context, m *chunk.Manifest, o PutOptions, prog *progress) (chunk.Hash, error) {
	raw, err := m.Marshal()
	if err != nil {
		return chunk.Hash{}, node.Errorf(node.CodeInvalid, []error{err}, "%v", err)
	}
	cid, err := chunk.Sum(raw)
	if err != nil {
		return chunk.Hash{}, boundary(ctx, err)
	}
	if err := s.lib.Put(cid, raw, Own, m.Type); err != nil {
		return chunk.Hash{}, boundary(ctx, err)
	}
	if err := s.lib.Pin(cid, m.Chunks); err != nil {
		return chunk.Hash{}, boundary(ctx, err)
	}
	s.mu.Lock()
	for _, h := range m.Chunks {
		if !slices.Contains(s.wholeOf[h], cid) {
			s.wholeOf[h] = append(s.wholeOf[h], cid)
		}
	}
	s.mu.Unlock()
	// The whole-content record first, before Put returns, so a reader
	// told the id finds this node; a node not admitted yet publishes it
	// at admission.
	if err := s.ov.Announce(ctx, cid.Key(), true); err != nil && ctx.Err() == nil {
		s.log.Info("could not announce content yet; the refresh will", "id", cid.Short(), "err", err)
	}
	go func() {
		life := s.h.Life()
		s.announceChunks(life, m.Chunks)
		n := s.rep.publish(life, m, cid, raw, o.Unicast)
		// Copies, this node's own included, as Stat counts them.
		s.h.Emit(EventReplicas, ReplicasEvent{ID: cid.String(), Replicas: n + 1})
	}()
	prog.report("done", m.Size, m.Size, 0, len(m.Chunks), len(m.Chunks), true)
	return cid, nil
}
