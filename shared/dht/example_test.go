package dht_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"ddt/shared/dht"
	"ddt/shared/id"
	"ddt/shared/wire"
)

// mesh is the smallest Network: DHTs in one map, calls run in place.
type mesh map[id.Address]*dht.DHT

type link struct {
	m    mesh
	self id.Address
}

func (l link) Call(_ context.Context, to id.Address, req wire.Message) (wire.Message, error) {
	d := l.m[to]
	if d == nil {
		return nil, errors.New("unreachable")
	}
	reply, err := d.Handle(l.self, req)
	if err != nil {
		// What the node layer sends back for a refusal.
		return &wire.Error{Code: wire.CodeOf(err), Message: err.Error()}, nil
	}
	return reply, nil
}

func Example() {
	m := mesh{}
	var nodes []*dht.DHT
	for i := range 30 {
		self := id.Derive([]byte{byte(i)}, nil)
		d := dht.New(dht.Config{Self: self, Network: link{m, self}})
		m[self] = d
		if i > 0 {
			d.Seen(nodes[0].Self()) // the one contact a relay would hand out
			d.Bootstrap(context.Background())
		}
		nodes = append(nodes, d)
	}
	ctx := context.Background()

	// Find a node.
	res, err := nodes[3].Lookup(ctx, nodes[27].Self())
	fmt.Println("found:", res.Found, err)

	// Publish a signed record under a key derived from a name, and read it
	// from elsewhere.
	_, priv, _ := ed25519.GenerateKey(nil)
	sum := sha256.Sum256([]byte("user/alice"))
	r := dht.Record{Key: id.Address(sum[:id.Len]), Seq: 1, Value: []byte("alice's address and keys")}
	if err := r.Sign(priv); err != nil {
		panic(err)
	}
	stored, err := nodes[5].Put(ctx, r)
	fmt.Println("stored at:", stored, err)
	recs, _, err := nodes[20].Get(ctx, r.Key)
	fmt.Printf("got: %d record, %q, %v\n", len(recs), recs[0].Value, err)
	// Output:
	// found: true <nil>
	// stored at: 20 <nil>
	// got: 1 record, "alice's address and keys", <nil>
}

func ExampleRecord_Verify() {
	_, priv, _ := ed25519.GenerateKey(nil)
	r := dht.Record{Key: id.Derive([]byte("some key"), nil), Seq: 7, Value: []byte("v")}
	_ = r.Sign(priv)
	fmt.Println(r.Verify())
	r.Value = []byte("w")
	err := r.Verify()
	fmt.Println(err, errors.Is(err, wire.ErrBadSignature), wire.CodeOf(err) == wire.CodeBadSignature)
	// Output:
	// <nil>
	// dht: bad record signature: bad signature true true
}
