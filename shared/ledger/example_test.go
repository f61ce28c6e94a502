package ledger_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"ddt/shared/ledger"
	"ddt/shared/store"
)

// relayKey returns a fixed key for an example relay and its log's origin.
func relayKey(name string) (ed25519.PrivateKey, ed25519.PublicKey, string) {
	seed := sha256.Sum256([]byte(name))
	key := ed25519.NewKeyFromSeed(seed[:])
	pub := key.Public().(ed25519.PublicKey)
	return key, pub, "ddt.zone/" + name + "/" + hex.EncodeToString(pub[:4])
}

func Example() {
	// The relay appends events and publishes its checkpoint.
	key, pub, origin := relayKey("example")
	log, err := ledger.Open(store.NewMemory(), origin, key) // OpenBolt on a relay
	if err != nil {
		panic(err)
	}
	first, _ := log.Append([]byte("register alice"), []byte("register bob"))
	signed, _ := log.Checkpoint()
	bob, _ := log.Entry(first + 1)
	proof, _ := log.InclusionProof(first+1, log.Size())

	// A node that knows only the origin and the relay's key checks it.
	cp, err := ledger.OpenCheckpoint(signed, origin, pub)
	fmt.Println(cp.Size, err)
	fmt.Println(ledger.VerifyInclusion(cp, first+1, bob, proof))
	err = ledger.VerifyInclusion(cp, first+1, []byte("register mallory"), proof)
	fmt.Println(errors.Is(err, ledger.ErrBadProof))

	// Later, the log has grown; the node checks it only appended.
	log.Append([]byte("register carol"))
	newSigned, _ := log.Checkpoint()
	newer, _ := ledger.OpenCheckpoint(newSigned, origin, pub)
	grew, _ := log.ConsistencyProof(cp.Size, newer.Size)
	fmt.Println(newer.Size, ledger.VerifyConsistency(cp, newer, grew))
	// Output:
	// 2 <nil>
	// <nil>
	// true
	// 3 <nil>
}

func ExampleMirror() {
	key, pub, origin := relayKey("neighbour")
	source, _ := ledger.Open(store.NewMemory(), origin, key)
	mirror, _ := ledger.OpenMirror(store.NewMemory(), origin, pub)

	// sync hands the mirror what the source relay would send it.
	sync := func() error {
		signed, cp := source.Checkpoint()
		entries, _ := source.Entries(mirror.Size(), cp.Size) // page by MaxBatch in real use
		proof, _ := source.ConsistencyProof(mirror.Size(), cp.Size)
		return mirror.Update(signed, entries, proof)
	}
	source.Append([]byte("claim example.ddt"), []byte("spend 3"))
	fmt.Println(sync(), mirror.Size())
	source.Append([]byte("spend 1"))
	fmt.Println(sync(), mirror.Size())
	fmt.Println(sync(), mirror.Size()) // nothing new: no change, no error

	e, _ := mirror.Entry(0)
	fmt.Printf("%s\n", e)
	// Output:
	// <nil> 2
	// <nil> 3
	// <nil> 3
	// claim example.ddt
}
