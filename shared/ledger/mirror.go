package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"golang.org/x/mod/sumdb/tlog"

	"ddt/shared/store"
)

// Mirror keeps a verified copy of another relay's log in a Store and
// serves it as that log would: entries, its signed checkpoint and proofs
// against it. It grows only through Update, which accepts a newer
// checkpoint only with the entries that lead to it; Update calls are
// serialised and every other method is safe to call concurrently.
//
// A Mirror keeps its records under "ledger/mirror/<origin>/" in the store,
// so one store can hold a relay's own log and mirrors of others; as with
// Log, open each origin once. Besides the tree's records it keeps
// "bytes": the committed size and the entry bytes up to it (16 bytes,
// big-endian), so Bytes needs no scan of the entries at open. That record
// is written after the checkpoint; one that names another size (a crash
// between the two writes) is recomputed from the entries.
type Mirror struct {
	*tree
	pub   ed25519.PublicKey
	mu    sync.Mutex // serialises Update and Delete
	bytes atomic.Int64
}

// OpenMirror opens the mirror of the log named origin whose key is pub,
// empty if st holds none. Like Open it checks what is stored.
func OpenMirror(st store.Store, origin string, pub ed25519.PublicKey) (*Mirror, error) {
	if _, err := verifier(origin, pub); err != nil {
		return nil, err
	}
	m := &Mirror{tree: newTree(st, "ledger/mirror/", origin), pub: bytes.Clone(pub)}
	if err := m.load(m.open); err != nil {
		return nil, err
	}
	if err := m.loadBytes(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Mirror) bytesKey() string { return m.prefix + "bytes" }

// loadBytes reads the byte count of the committed tree, or counts the
// entries when the record is missing or names another size.
func (m *Mirror) loadBytes() error {
	size := m.Size()
	b, err := m.st.Get(m.bytesKey())
	if err == nil && len(b) == 16 && int64(binary.BigEndian.Uint64(b)) == size {
		m.bytes.Store(int64(binary.BigEndian.Uint64(b[8:])))
		return nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("ledger: %s: load byte count: %w", m.origin, err)
	}
	var total int64
	for i := int64(0); i < size; {
		es, err := m.Entries(i, size)
		if err != nil {
			return err
		}
		for _, e := range es {
			total += int64(len(e))
		}
		i += int64(len(es))
	}
	m.bytes.Store(total)
	if size == 0 {
		return nil
	}
	return m.putBytes(size, total)
}

func (m *Mirror) putBytes(size, total int64) error {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(size))
	return m.put(m.bytesKey(), binary.BigEndian.AppendUint64(b, uint64(total)))
}

// Bytes returns the total length of the committed entries: what the
// mirror holds of its log, for callers that bound it.
func (m *Mirror) Bytes() int64 { return m.bytes.Load() }

// Delete removes every record of the mirror from its store and leaves it
// empty, as OpenMirror finds a store that holds none; a later Update
// starts from size 0. Readers that race with it may see ErrCorrupt. On
// an error some records may remain; Delete again to finish.
func (m *Mirror) Delete() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur.Store(&head{cp: Checkpoint{Origin: m.origin, Hash: emptyRoot}})
	m.bytes.Store(0)
	return DeleteMirror(m.st, m.origin)
}

// DeleteMirror removes every record of the mirror of the log named
// origin from st, without opening it (so a mirror whose records are
// corrupt can be deleted too). No Mirror of origin may be in use.
func DeleteMirror(st store.Store, origin string) error {
	t := newTree(st, "ledger/mirror/", origin)
	keys, err := st.Keys(t.prefix)
	if err != nil {
		return fmt.Errorf("ledger: %s: delete: %w", origin, err)
	}
	// The checkpoint first: if a delete fails halfway, what remains is
	// uncommitted data, which the next open ignores and the next growth
	// overwrites.
	if err := st.Delete(t.checkpointKey()); err != nil {
		return fmt.Errorf("ledger: %s: delete: %w", origin, err)
	}
	for _, k := range keys {
		if err := st.Delete(k); err != nil {
			return fmt.Errorf("ledger: %s: delete: %w", origin, err)
		}
	}
	return nil
}

func (m *Mirror) open(signed []byte) (Checkpoint, error) {
	return OpenCheckpoint(signed, m.origin, m.pub)
}

// Update offers the mirror a signed checkpoint of its log, the entries the
// log appended since the mirror's checkpoint, and the consistency proof
// from the mirror's size to the new one (the source's
// ConsistencyProof(mirror.Size(), newSize)).
//
// A newer checkpoint is accepted, and becomes the mirror's, only if its
// signature verifies, the proof shows it extends the mirror's checkpoint,
// and the mirror's entries followed by the given ones hash to its root.
// A checkpoint for a size the mirror already has is checked against the
// mirror's own tree at that size: if the roots agree it is a replay or an
// older view and Update returns nil, changing nothing (entries and proof
// are then ignored).
//
// Errors: those of OpenCheckpoint; ErrFork when the checkpoint disagrees
// with the mirror's tree at its size or cannot be shown to extend it (the
// log signed a split view, or the proof was garbled — either way the
// mirror does not move; an empty mirror has nothing to fork from and
// reports a bad proof as ErrBadProof); ErrBadProof when the entries are the wrong
// number or do not hash to the checkpoint; ErrTooLarge for an entry
// longer than MaxEntry. On any error the mirror keeps its state.
func (m *Mirror) Update(signed []byte, entries [][]byte, proof tlog.TreeProof) error {
	cp, err := m.open(signed)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.head()
	if cp.Size <= h.cp.Size {
		root, err := m.rootAt(cp.Size)
		if err != nil {
			return err
		}
		if root != cp.Hash {
			return fmt.Errorf("%w: %s signed root %v at size %d; the mirror has %v there", ErrFork, m.origin, cp.Hash, cp.Size, root)
		}
		return nil
	}
	if err := VerifyConsistency(h.cp, cp, proof); err != nil {
		if errors.Is(err, ErrBadProof) && h.cp.Size > 0 { // nothing forks from the empty tree
			return fmt.Errorf("%w: %s at size %d cannot be shown to extend the mirror's size %d: %v", ErrFork, m.origin, cp.Size, h.cp.Size, err)
		}
		return err
	}
	if add := cp.Size - h.cp.Size; int64(len(entries)) != add {
		return fmt.Errorf("%w: %s: %d entries for a checkpoint that adds %d", ErrBadProof, m.origin, len(entries), add)
	}
	for i, e := range entries {
		if len(e) > MaxEntry {
			return fmt.Errorf("%w: %s: entry %d has %d bytes, limit %d", ErrTooLarge, m.origin, h.cp.Size+int64(i), len(e), MaxEntry)
		}
	}
	root, err := m.extend(h.cp.Size, entries)
	if err != nil {
		return err
	}
	if root != cp.Hash {
		return fmt.Errorf("%w: %s: entries %d … %d give root %v, checkpoint says %v", ErrBadProof, m.origin, h.cp.Size, cp.Size-1, root, cp.Hash)
	}
	total := m.bytes.Load()
	for _, e := range entries {
		total += int64(len(e))
	}
	if err := m.commit(&head{cp: cp, signed: bytes.Clone(signed)}); err != nil {
		return err
	}
	m.bytes.Store(total)
	// A failure here costs a count of the entries at the next open.
	m.putBytes(cp.Size, total)
	return nil
}
