package zone

import (
	"runtime"
	"sort"
	"testing"

	"ddt/shared/id"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// manyPeers is a Directory of n members of linked zones.
type manyPeers struct {
	fakeDirectory
	peers []Peer
}

func (d *manyPeers) EachPeerLocked(fn func(Peer)) {
	for _, p := range d.peers {
		fn(p)
	}
}

// An admission's peer list is the ClosestPeers closest of every
// candidate plus RandomPeers others, and picking it costs memory that
// does not grow with the candidates: linked zones claiming tens of
// thousands of members do not make every admission allocate and sort
// them all.
func TestPickPeersBounded(t *testing.T) {
	const n = 20000
	z := newTestZone(t, store.NewMemory(), Config{})
	d := &manyPeers{}
	for i := range n {
		var nonce [16]byte
		nonce[0], nonce[1], nonce[2] = byte(i), byte(i>>8), byte(i>>16)
		l := wire.Lease{Nonce: nonce}
		l.Address = id.Derive([]byte{7}, nonce[:])
		l.SignKey[0] = byte(i) // not the newcomer's key
		l.SignKey[1] = byte(i >> 8)
		l.SignKey[2] = 1
		d.peers = append(d.peers, Peer{Lease: &l})
	}
	z.SetDirectory(d)
	newcomer := wire.Lease{Address: id.Derive([]byte{9}, []byte{1})}

	z.mu.Lock()
	picked := z.pickPeersLocked(&newcomer)
	z.mu.Unlock()
	if len(picked) != ClosestPeers+RandomPeers {
		t.Fatalf("%d peers picked", len(picked))
	}
	all := make([]id.Address, n)
	for i, p := range d.peers {
		all[i] = p.Lease.Address
	}
	sort.Slice(all, func(i, j int) bool { return id.Closer(newcomer.Address, all[i], all[j]) })
	seen := map[id.Address]bool{}
	for i, p := range picked {
		if i < ClosestPeers && p.Lease.Address != all[i] {
			t.Fatalf("peer %d is %s, the %dth closest is %s", i, p.Lease.Address.Short(), i, all[i].Short())
		}
		if seen[p.Lease.Address] {
			t.Fatalf("%s picked twice", p.Lease.Address.Short())
		}
		seen[p.Lease.Address] = true
	}

	// The bytes allocated per pick: a slice of every candidate alone
	// would be n*16 bytes.
	const runs = 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		z.mu.Lock()
		z.pickPeersLocked(&newcomer)
		z.mu.Unlock()
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 16<<10 {
		t.Fatalf("a pick among %d candidates allocates %d bytes", n, per)
	}
}
