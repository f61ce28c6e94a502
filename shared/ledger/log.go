package ledger

import (
	"crypto/ed25519"
	"fmt"
	"sync"

	"ddt/shared/store"
)

// Log is a relay's own ledger: an append-only Merkle tree of entries in a
// Store, with a checkpoint signed by the relay's key for every size it
// reaches. Appends are serialised; every other method is safe to call
// concurrently with them and sees the last committed tree.
//
// A Log keeps its records under "ledger/log/<origin>/" in the store (see
// Open) and holds no resources of its own: closing the store ends it. Only
// one Log may have an origin open in a store at a time; a second would
// append over the first's uncommitted records.
type Log struct {
	*tree
	signer *signer
	mu     sync.Mutex // serialises Append
}

// Open opens the log named origin in st, signing with key, and creates it
// empty if st holds none. The origin names the log in its checkpoints and
// is its note key name; DDT uses "ddt.zone/<zone>/<first 8 hex digits of
// the key>", so a new key starts a new log. Open checks the stored
// checkpoint against key and the stored hashes against the checkpoint,
// failing with ErrCorrupt if either disagrees.
func Open(st store.Store, origin string, key ed25519.PrivateKey) (*Log, error) {
	s, err := newSigner(origin, key)
	if err != nil {
		return nil, err
	}
	l := &Log{tree: newTree(st, "ledger/log/", origin), signer: s}
	pub := key.Public().(ed25519.PublicKey)
	err = l.load(func(signed []byte) (Checkpoint, error) { return OpenCheckpoint(signed, origin, pub) })
	if err != nil {
		return nil, err
	}
	if h := l.head(); h.signed == nil { // empty: sign size 0, store nothing yet
		signed, err := s.sign(h.cp)
		if err != nil {
			return nil, err
		}
		l.cur.Store(&head{cp: h.cp, signed: signed})
	}
	return l, nil
}

// Append adds entries (each at most MaxEntry bytes, copied) at the end of
// the log in one step and returns the index of the first. Either all of
// them are committed, with a new signed checkpoint, or none is: entries
// and hashes are written first and the checkpoint last, so a crash or a
// store error in between leaves the log as it was (see the package doc).
// Appending nothing returns Size() and writes nothing.
func (l *Log) Append(entries ...[]byte) (first int64, err error) {
	for i, e := range entries {
		if len(e) > MaxEntry {
			return 0, fmt.Errorf("%w: entry %d of the batch has %d bytes, limit %d", ErrTooLarge, i, len(e), MaxEntry)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.head()
	if len(entries) == 0 {
		return h.cp.Size, nil
	}
	root, err := l.extend(h.cp.Size, entries)
	if err != nil {
		return 0, err
	}
	cp := Checkpoint{Origin: l.origin, Size: h.cp.Size + int64(len(entries)), Hash: root}
	signed, err := l.signer.sign(cp)
	if err != nil {
		return 0, err
	}
	if err := l.commit(&head{cp: cp, signed: signed}); err != nil {
		return 0, err
	}
	return h.cp.Size, nil
}
