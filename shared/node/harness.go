package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"ddt/shared/transport"
	"ddt/shared/wire"
)

// Harness hooks. A simulation or test harness (package nodetest) builds
// nodes that are admitted and linked without a relay: AdmitLocal does
// what a relay's admission does, Link what a signaled data channel does,
// and both run the real code paths from there on (the DHT, the peer
// handshake with its features, the read loops, the capabilities'
// admission hooks). Nothing in a running node calls them.

// AdmitLocal admits n with lease, signed by the relay in relays whose key
// signed it (every relay listed is trusted for its zone), as if that
// relay had admitted it, but with no relay connection: the DHT is made
// for the lease's address and the capabilities' admission hooks run
// until the node is closed. relayFeatures are what the relay would have
// announced; flags, parallel to relays, what the admission would vouch
// for about each (nil: every relay trusted, and running the username
// service when relayFeatures lists it).
func (n *Node) AdmitLocal(lease wire.Lease, relays []wire.RelayInfo, flags []wire.RelayFlags, relayFeatures wire.Features) error {
	var own bool
	for _, r := range relays {
		own = own || r.Key == lease.RelayKey
	}
	if !own {
		return errors.New("node: AdmitLocal needs the lease's relay among relays")
	}
	n.mu.Lock()
	n.lease, n.relayKey, n.relayFeatures = lease, lease.RelayKey, relayFeatures
	n.mu.Unlock()
	if flags == nil {
		all := wire.RelayTrusted
		if relayFeatures.Has(wire.FeatureNames) {
			all |= wire.RelayNames
		}
		if relayFeatures.Has(wire.FeatureSites) {
			all |= wire.RelaySites
		}
		flags = make([]wire.RelayFlags, len(relays))
		for i := range flags {
			flags[i] = all
		}
	}
	n.federate(relays, flags)
	if err := n.verifyLease(&lease); err != nil {
		return fmt.Errorf("node: AdmitLocal: %w", err)
	}
	n.joinedAs(lease.Address)
	for _, fn := range n.admitted {
		go fn(n.life, lease)
	}
	return nil
}

// Link connects a and b as a signaled data channel would: over ca/cb
// (control) and, if given, bulka/bulkb (their bulk channel), with the
// real handshake (leases, proofs, features) on the control channel. Both
// must be admitted in zones the other trusts.
func Link(a, b *Node, ca, cb, bulka, bulkb transport.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		hello *wire.PeerHello
		err   error
	}
	hasBulk := bulka != nil && bulkb != nil
	done := make(chan result, 1)
	go func() {
		h, err := b.handshake(ctx, cb, a.Address(), hasBulk)
		done <- result{h, err}
	}()
	ha, err := a.handshake(ctx, ca, b.Address(), hasBulk)
	rb := <-done
	if err == nil {
		err = rb.err
	}
	if err != nil {
		ca.Close()
		cb.Close()
		return err
	}
	if !hasBulk {
		bulka, bulkb = ca, cb
	}
	a.addPeer(b.Address(), ha.Native, ha.Features, ca, bulka, ViaRelay)
	b.addPeer(a.Address(), rb.hello.Native, rb.hello.Features, cb, bulkb, ViaRelay)
	return nil
}

// Close stops a node that Run never ran (a harness's): its links close
// and its capabilities' background work ends. Run does the same when it
// returns.
func (n *Node) Close() { n.closePeers() }
