package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/mod/sumdb/tlog"

	"ddt/shared/store"
)

const (
	// tileHeight is the height of the hash tiles kept in the store: a tile
	// holds up to 16 hashes of one tree level, the level-0 ones being the
	// entries' record hashes.
	tileHeight = 4
	// bundleSize is how many entries share one store record, aligned with
	// the level-0 hash tiles.
	bundleSize = 1 << tileHeight
)

// head is a tree's committed state: what a reader may see.
type head struct {
	cp     Checkpoint
	signed []byte // the signed note for cp; nil for a mirror that has accepted nothing
}

// tree is a Merkle tree of entries kept in a store under one key prefix.
// Log and Mirror are each a tree plus a rule for who may grow it.
//
// Records, under the prefix:
//
//	checkpoint          the signed checkpoint of the committed tree
//	entries/<n>         entries 16n … 16n+15, each as a 2-byte big-endian
//	                    length and its bytes (n is 16 hex digits)
//	hashes/<L>/<n>      hash tile n of level L (tlog tiles of height 4): up
//	                    to 16 hashes of tree level 4L, 32 bytes each
//
// Growing writes the entry bundles and hash tiles first and the checkpoint
// last; the checkpoint is the commit. Bundles and tiles are only ever
// rewritten with more entries or hashes after the ones they held, so a
// crash, a store error or a refused mirror update at any point leaves the
// committed prefix intact and at most some unused data beyond it, which
// the next growth overwrites. Readers use the committed head only.
//
// Reads are safe at any time; growth (extend then commit) must be
// serialised by the caller.
type tree struct {
	st     store.Store
	prefix string
	origin string
	cur    atomic.Pointer[head]
}

func newTree(st store.Store, prefix, origin string) *tree {
	return &tree{st: st, prefix: prefix + origin + "/", origin: origin}
}

func (t *tree) checkpointKey() string { return t.prefix + "checkpoint" }
func (t *tree) bundleKey(n int64) string {
	return fmt.Sprintf("%sentries/%016x", t.prefix, n)
}
func (t *tree) tileKey(level int, n int64) string {
	return fmt.Sprintf("%shashes/%02d/%016x", t.prefix, level, n)
}

// load reads the committed head, checking it with open and checking that
// the stored hashes reach its root. With nothing stored, the tree is empty.
func (t *tree) load(open func([]byte) (Checkpoint, error)) error {
	signed, err := t.st.Get(t.checkpointKey())
	if errors.Is(err, store.ErrNotFound) {
		t.cur.Store(&head{cp: Checkpoint{Origin: t.origin, Hash: emptyRoot}})
		return nil
	}
	if err != nil {
		return fmt.Errorf("ledger: %s: load checkpoint: %w", t.origin, err)
	}
	cp, err := open(signed)
	if err != nil {
		return fmt.Errorf("%w: %s: stored checkpoint: %w", ErrCorrupt, t.origin, err)
	}
	root, err := tlog.TreeHash(cp.Size, t.reader(cp.Size))
	if err != nil {
		return err
	}
	if root != cp.Hash {
		return fmt.Errorf("%w: %s: stored hashes give root %v at size %d, checkpoint says %v", ErrCorrupt, t.origin, root, cp.Size, cp.Hash)
	}
	t.cur.Store(&head{cp: cp, signed: signed})
	return nil
}

// head returns the committed state.
func (t *tree) head() *head { return t.cur.Load() }

// commit stores h's signed checkpoint, making h the committed state.
func (t *tree) commit(h *head) error {
	if err := t.st.Put(t.checkpointKey(), h.signed); err != nil {
		return fmt.Errorf("ledger: %s: commit size %d: %w", t.origin, h.cp.Size, err)
	}
	t.cur.Store(h)
	return nil
}

// Size returns the number of entries in the committed tree.
func (t *tree) Size() int64 { return t.head().cp.Size }

// Checkpoint returns the signed checkpoint of the committed tree and what
// it says, taken together: a proof asked for at cp.Size verifies against
// the note. A Mirror that has accepted nothing returns a nil note and the
// empty tree.
func (t *tree) Checkpoint() (signed []byte, cp Checkpoint) {
	h := t.head()
	return bytes.Clone(h.signed), h.cp
}

// Entry returns entry i (from 0), or ErrNotFound beyond the tree.
func (t *tree) Entry(i int64) ([]byte, error) {
	es, err := t.Entries(i, i+1)
	if err != nil {
		return nil, err
	}
	return es[0], nil
}

// Entries returns entries from (inclusive) to to (exclusive), at most
// MaxBatch of them: when fewer come back than were asked for, ask again
// from where they end. A range beyond the tree fails with ErrNotFound.
func (t *tree) Entries(from, to int64) ([][]byte, error) {
	size := t.Size()
	if from < 0 || to < from || to > size {
		return nil, fmt.Errorf("%w: entries [%d, %d) of %s at size %d", ErrNotFound, from, to, t.origin, size)
	}
	to = min(to, from+MaxBatch)
	out := make([][]byte, 0, to-from)
	for i := from; i < to; {
		n := i / bundleSize
		start := n * bundleSize
		end := min(to, start+bundleSize)
		b, err := t.bundle(n)
		if err != nil {
			return nil, err
		}
		if int64(len(b)) < end-start {
			return nil, fmt.Errorf("%w: %s: bundle %d holds %d entries, size is %d", ErrCorrupt, t.origin, n, len(b), size)
		}
		out = append(out, b[i-start:end-start]...)
		i = end
	}
	return out, nil
}

// InclusionProof returns the proof that entry index is in the tree of the
// given size (at most Size()), for VerifyInclusion against that size's
// checkpoint.
func (t *tree) InclusionProof(index, size int64) (tlog.RecordProof, error) {
	h := t.head()
	if index < 0 || index >= size || size > h.cp.Size {
		return nil, fmt.Errorf("%w: entry %d at size %d of %s at size %d", ErrNotFound, index, size, t.origin, h.cp.Size)
	}
	return tlog.ProveRecord(size, index, t.reader(h.cp.Size))
}

// ConsistencyProof returns the proof that the tree of newSize extends the
// tree of oldSize (0 ≤ oldSize ≤ newSize ≤ Size()), for VerifyConsistency.
// It is empty when oldSize is 0 or equals newSize.
func (t *tree) ConsistencyProof(oldSize, newSize int64) (tlog.TreeProof, error) {
	h := t.head()
	if oldSize < 0 || oldSize > newSize || newSize > h.cp.Size {
		return nil, fmt.Errorf("%w: consistency %d → %d of %s at size %d", ErrNotFound, oldSize, newSize, t.origin, h.cp.Size)
	}
	if oldSize == 0 || oldSize == newSize {
		return tlog.TreeProof{}, nil
	}
	return tlog.ProveTree(newSize, oldSize, t.reader(h.cp.Size))
}

// rootAt returns the root of the committed tree's first size entries.
func (t *tree) rootAt(size int64) (tlog.Hash, error) {
	h := t.head()
	if size < 0 || size > h.cp.Size {
		return tlog.Hash{}, fmt.Errorf("%w: root at size %d of %s at size %d", ErrNotFound, size, t.origin, h.cp.Size)
	}
	return tlog.TreeHash(size, t.reader(h.cp.Size))
}

// extend writes entries after the first size ones and returns the root of
// the grown tree. It does not commit: the caller signs or checks the root
// and then commits, or drops the growth by not committing.
func (t *tree) extend(size int64, entries [][]byte) (tlog.Hash, error) {
	r := t.reader(size)
	for i, e := range entries {
		hs, err := tlog.StoredHashes(size+int64(i), e, r)
		if err != nil {
			return tlog.Hash{}, err
		}
		r.pending = append(r.pending, hs...)
	}
	newSize := size + int64(len(entries))

	// Entry bundles, starting with the committed part of a partial one.
	var bundle []byte
	if size%bundleSize != 0 {
		old, err := t.bundle(size / bundleSize)
		if err != nil {
			return tlog.Hash{}, err
		}
		if int64(len(old)) < size%bundleSize {
			return tlog.Hash{}, fmt.Errorf("%w: %s: bundle %d holds %d entries, size is %d", ErrCorrupt, t.origin, size/bundleSize, len(old), size)
		}
		for _, e := range old[:size%bundleSize] {
			bundle = appendEntry(bundle, e)
		}
	}
	for i, e := range entries {
		bundle = appendEntry(bundle, e)
		if n := size + int64(i) + 1; n%bundleSize == 0 || n == newSize {
			if err := t.put(t.bundleKey((n-1)/bundleSize), bundle); err != nil {
				return tlog.Hash{}, err
			}
			bundle = bundle[:0]
		}
	}

	// Hash tiles: every tile the growth touched, rewritten whole.
	for _, tile := range tlog.NewTiles(tileHeight, size, newSize) {
		data, err := tlog.ReadTileData(tile, r)
		if err != nil {
			return tlog.Hash{}, err
		}
		if err := t.put(t.tileKey(tile.L, tile.N), data); err != nil {
			return tlog.Hash{}, err
		}
	}
	return tlog.TreeHash(newSize, r)
}

func (t *tree) put(key string, value []byte) error {
	if err := t.st.Put(key, value); err != nil {
		return fmt.Errorf("ledger: %s: %w", t.origin, err)
	}
	return nil
}

// bundle reads entry bundle n.
func (t *tree) bundle(n int64) ([][]byte, error) {
	data, err := t.st.Get(t.bundleKey(n))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s: entry bundle %d missing", ErrCorrupt, t.origin, n)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: %s: read entries: %w", t.origin, err)
	}
	es, err := parseBundle(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: entry bundle %d: %w", ErrCorrupt, t.origin, n, err)
	}
	return es, nil
}

// appendEntry appends e to a bundle as a 2-byte big-endian length and its
// bytes (the entry-bundle framing of C2SP tlog-tiles).
func appendEntry(b, e []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
	return append(b, e...)
}

// parseBundle splits an entry bundle. The entries share b's memory but
// each is capped, so appending to one cannot overwrite the next.
func parseBundle(b []byte) ([][]byte, error) {
	var es [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, fmt.Errorf("%w: entry bundle ends inside a length", ErrMalformed)
		}
		n := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		switch {
		case n > MaxEntry:
			return nil, fmt.Errorf("%w: bundled entry of %d bytes, limit %d", ErrMalformed, n, MaxEntry)
		case n > len(b):
			return nil, fmt.Errorf("%w: bundled entry of %d bytes, %d left", ErrMalformed, n, len(b))
		case len(es) == bundleSize:
			return nil, fmt.Errorf("%w: entry bundle holds more than %d entries", ErrMalformed, bundleSize)
		}
		es = append(es, b[:n:n])
		b = b[n:]
	}
	return es, nil
}

// reader returns a tlog.HashReader over the stored hashes of the tree of
// the given size, to which extend adds the hashes it computes.
func (t *tree) reader(size int64) *hashReader {
	return &hashReader{t: t, base: tlog.StoredHashCount(size)}
}

// hashReader reads hashes by storage index: those below base from the
// store's tiles, the rest from pending, which follows them.
type hashReader struct {
	t       *tree
	base    int64
	pending []tlog.Hash
}

func (r *hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	type coord struct {
		level int
		n     int64
	}
	tiles := make(map[coord][]byte) // each tile read once per call
	for i, x := range indexes {
		if x >= r.base {
			if x-r.base >= int64(len(r.pending)) {
				return nil, fmt.Errorf("ledger: %s: hash %d beyond the %d stored", r.t.origin, x, r.base+int64(len(r.pending)))
			}
			out[i] = r.pending[x-r.base]
			continue
		}
		tile := tlog.TileForIndex(tileHeight, x)
		c := coord{tile.L, tile.N}
		data, ok := tiles[c]
		if !ok {
			var err error
			if data, err = r.t.tile(tile.L, tile.N); err != nil {
				return nil, err
			}
			tiles[c] = data
		}
		tile.W = len(data) / tlog.HashSize
		h, err := tlog.HashFromTile(tile, data, x)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: hash %d: %v", ErrCorrupt, r.t.origin, x, err)
		}
		out[i] = h
	}
	return out, nil
}

// tile reads hash tile n of level L.
func (t *tree) tile(level int, n int64) ([]byte, error) {
	data, err := t.st.Get(t.tileKey(level, n))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s: hash tile %d/%d missing", ErrCorrupt, t.origin, level, n)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: %s: read hashes: %w", t.origin, err)
	}
	if len(data) == 0 || len(data)%tlog.HashSize != 0 || len(data) > bundleSize*tlog.HashSize {
		return nil, fmt.Errorf("%w: %s: hash tile %d/%d of %d bytes", ErrCorrupt, t.origin, level, n, len(data))
	}
	return data, nil
}
