package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/wire"
)

// refusedError is a relay's Refused answer.
type refusedError struct{ r *wire.Refused }

func (e *refusedError) Error() string {
	msg := e.r.Code.Err().Error()
	if e.r.Reason != "" {
		msg = e.r.Reason
	}
	if e.r.Redirect != "" {
		msg += "; try " + e.r.Redirect
	}
	return msg
}

func (e *refusedError) Unwrap() error { return e.r.Code.Err() }

// WebSocketURL turns a relay's base URL into its node endpoint.
func WebSocketURL(relay string) (string, error) { return RelayEndpoint(relay, "/ws") }

// RelayEndpoint turns a relay's base URL (http or https) into the
// WebSocket URL of one of its endpoints, path included.
func RelayEndpoint(relay, path string) (string, error) {
	u, err := url.Parse(relay)
	if err != nil {
		return "", fmt.Errorf("relay URL: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("relay URL %q: scheme must be http or https", relay)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	return u.String(), nil
}

// Dialer opens the WebSocket to a relay.
type Dialer func(ctx context.Context, url string) (*websocket.Conn, error)

// DialWebSocket is the default Dialer.
func DialWebSocket(ctx context.Context, url string) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, url, nil)
	return c, err
}

// EarlyDialer starts dialing relay now and hands that connection to the
// first call; later calls dial afresh. A browser tab uses it to open the
// relay connection while it is still reading its identity from IndexedDB.
func EarlyDialer(relay string) Dialer {
	wsURL, err := WebSocketURL(relay)
	type result struct {
		c   *websocket.Conn
		err error
	}
	early := make(chan result, 1)
	if err != nil {
		early <- result{nil, err}
	} else {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := DialWebSocket(ctx, wsURL)
			early <- result{c, err}
		}()
	}
	var once sync.Once
	return func(ctx context.Context, url string) (*websocket.Conn, error) {
		used := false
		var r result
		once.Do(func() {
			used = true
			select {
			case r = <-early:
			case <-ctx.Done():
				r.err = ctx.Err()
			}
		})
		if used && url == wsURL {
			return r.c, r.err
		}
		if used && r.c != nil {
			r.c.CloseNow() // the first join went elsewhere
		}
		return DialWebSocket(ctx, url)
	}
}

// Run keeps the node in its zone until ctx ends: it connects to the relay,
// and reconnects with backoff when the relay goes away or refuses.
//
// It joins the relay with the lowest round trip among those it knows (the
// configured one, and those earlier relays named as federated), follows a
// full relay's redirect, and moves to another known relay when its own
// stays unreachable.
func (n *Node) Run(ctx context.Context) error {
	if _, err := WebSocketURL(n.cfg.Relay); err != nil {
		return err
	}
	defer n.closePeers()
	mctx, stopMaintain := context.WithCancel(ctx)
	defer stopMaintain()
	go n.maintain(mctx)
	current := n.fastest(ctx, n.knownRelays(), n.cfg.Relay)
	failures := 0
	backoff := 500 * time.Millisecond
	for {
		n.setRelay(current)
		wsURL, err := WebSocketURL(current)
		if err != nil { // a bad redirect or a corrupt saved list
			n.log.Warn("unusable relay URL", "url", current, "err", err)
			current = n.cfg.Relay
			continue
		}
		n.setState(StateConnecting, "connecting to "+current, 0)
		admitted, err := n.relaySession(ctx, wsURL)
		if err != nil && ctx.Err() == nil {
			n.log.Info("relay connection ended", "admitted", admitted, "err", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if admitted {
			backoff = 500 * time.Millisecond
			failures = 0
		}
		var wait time.Duration
		var refused *refusedError
		if errors.As(err, &refused) {
			wait = time.Duration(refused.r.RetryAfterMs) * time.Millisecond
			if wait <= 0 {
				wait = 30 * time.Second
			}
			if to := refused.r.Redirect; to != "" && to != current && !admitted {
				// Follow the redirect at once; the next refusal names
				// another relay or none.
				n.setState(StateRefused, refused.Error(), 0)
				n.addRelays(to)
				current = to
				continue
			}
			n.setState(StateRefused, refused.Error(), wait)
		} else {
			failures++
			if failures >= switchAfter {
				if next := n.fastest(ctx, without(n.knownRelays(), current), ""); next != "" {
					n.log.Info("moving to another relay", "from", current, "to", next)
					current, failures = next, 0
				}
			}
			wait = jitter(backoff)
			backoff = min(2*backoff, n.cfg.MaxBackoff)
			n.setState(StateRetrying, unreachable(admitted, err), wait)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func jitter(d time.Duration) time.Duration {
	r, _ := rand.Int(rand.Reader, big.NewInt(int64(d/4)+1))
	return d - d/8 + time.Duration(r.Int64())
}

// unreachable words a lost relay for the page. Browsers hide why a
// WebSocket failed, so the sentence says what happened, not the error
// text (which goes to the log).
func unreachable(wasAdmitted bool, err error) string {
	switch {
	case wasAdmitted:
		return "lost the connection to the relay"
	case errors.Is(err, wire.ErrProtocol), errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrVersion):
		return "the relay speaks another protocol: " + err.Error()
	case errors.Is(err, identity.ErrBadLease), errors.Is(err, identity.ErrExpired):
		return "the relay's lease did not verify: " + err.Error()
	default:
		return "cannot reach the relay"
	}
}

func (n *Node) closePeers() {
	n.endLife()
	n.mu.Lock()
	n.stopped = true
	for addr, d := range n.dials {
		delete(n.dials, addr)
		if d.session != nil {
			go d.session.Close()
		}
	}
	ps := make([]*peer, 0, len(n.peers))
	for _, p := range n.peers {
		ps = append(ps, p)
	}
	n.mu.Unlock()
	for _, p := range ps {
		p.close("node stopped", true)
	}
}

// relaySession runs one relay connection: admission, then the read loop
// until the connection ends. It reports whether the node was admitted.
func (n *Node) relaySession(ctx context.Context, wsURL string) (admitted bool, err error) {
	t0 := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := n.cfg.Dial(dctx, wsURL)
	cancel()
	if err != nil {
		return false, err
	}
	defer c.CloseNow()
	c.SetReadLimit(wire.MaxFrame)

	read := func(ctx context.Context) (wire.Message, error) {
		_, b, err := c.Read(ctx)
		if err != nil {
			return nil, err
		}
		return wire.Unmarshal(b)
	}
	write := func(ctx context.Context, m wire.Message) error {
		b, err := wire.Marshal(m)
		if err != nil {
			return err
		}
		return c.Write(ctx, websocket.MessageBinary, b)
	}

	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	m, err := read(hctx)
	if err != nil {
		return false, err
	}
	tDial := time.Since(t0)
	ch, ok := m.(*wire.Challenge)
	if !ok {
		return false, fmt.Errorf("%w: expected a challenge", wire.ErrProtocol)
	}
	hello := &wire.Hello{SignKey: n.id.SignKey(), AgreeKey: n.id.AgreeKey(), Native: n.cfg.Native, Agent: n.cfg.Agent}
	hello.Sig = n.id.Sign(wire.HelloSignedBytes(ch, hello.SignKey, hello.AgreeKey, hello.Native))
	if err := write(hctx, hello); err != nil {
		return false, err
	}
	m, err = read(hctx)
	if err != nil {
		return false, err
	}
	var adm *wire.Admitted
	switch m := m.(type) {
	case *wire.Refused:
		c.Close(websocket.StatusNormalClosure, "")
		return false, &refusedError{m}
	case *wire.Error:
		return false, m.Err()
	case *wire.Admitted:
		adm = m
	default:
		return false, fmt.Errorf("%w: expected admission, got type %d", wire.ErrProtocol, m.Type())
	}
	tAdm := time.Since(t0)
	if err := identity.VerifyLease(&adm.Lease, ch.RelayKey, n.cfg.Now()); err != nil {
		return false, fmt.Errorf("relay's lease: %w", err)
	}
	if adm.Lease.SignKey != hello.SignKey {
		return false, fmt.Errorf("%w: lease is for another key", wire.ErrProtocol)
	}
	if t, ok := n.cfg.Transport.(interface{ SetICEServers([]string) }); ok && len(adm.ICEServers) > 0 {
		t.SetICEServers(adm.ICEServers)
	}
	if b, err := wire.Marshal(&adm.Lease); err == nil {
		go func() { // off the critical path: the relay remembers it too
			if err := n.cfg.Store.Put(keyLease, b); err != nil {
				n.log.Warn("could not save lease", "err", err)
			}
		}()
	}

	out := make(chan wire.Message, 256)
	done := make(chan struct{})
	n.mu.Lock()
	if n.lease.Address != adm.Lease.Address && !n.lease.Address.IsZero() {
		n.log.Warn("address changed", "old", n.lease.Address.Short(), "new", adm.Lease.Address.Short())
	}
	n.lease, n.relayKey = adm.Lease, ch.RelayKey
	n.relayOut, n.relayDone = out, done
	if n.relayBack != nil {
		close(n.relayBack) // requests waiting for the relay go ahead
		n.relayBack = nil
	}
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		if n.relayOut == out {
			n.relayOut, n.relayDone = nil, nil
		}
		n.mu.Unlock()
		close(done)
	}()
	n.log.Info("admitted", "address", adm.Lease.Address, "zone", adm.Lease.Zone, "peers", len(adm.Peers),
		"challengeMs", tDial.Milliseconds(), "admittedMs", tAdm.Milliseconds(), "totalMs", time.Since(t0).Milliseconds())
	// The routing table holds the relay's peers before anyone hears of the
	// admission, so a lookup right after ddt.ready has contacts to ask.
	n.federate(adm.Relays)
	d := n.joinedAs(adm.Lease.Address)
	var dial []id.Address
	for i := range adm.Peers {
		if n.learn(&adm.Peers[i], adm.Natives[i]) {
			dial = append(dial, adm.Peers[i].Address)
		}
	}
	n.setState(StateAdmitted, "connected to zone "+adm.Lease.Zone, 0)

	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for {
			select {
			case m := <-out:
				if err := write(sctx, m); err != nil {
					c.CloseNow()
					return
				}
			case <-sctx.Done():
				return
			}
		}
	}()
	for _, a := range dial {
		n.connectTo(a, ViaRelay, false)
	}
	go n.announce(sctx, d, adm.Lease.Address)
	go n.nameAtAdmission(sctx)
	for {
		m, err := read(sctx)
		if err != nil {
			if errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrVersion) {
				n.log.Warn("bad message from relay", "err", err)
			}
			return true, err
		}
		switch m := m.(type) {
		case *wire.Signal:
			n.onSignal(m, ViaRelay)
		case *wire.PeerJoined:
			n.learn(&m.Lease, m.Native)
		case *wire.PeerLeft:
			n.onPeerLeft(m.Address)
		case *wire.NameResult:
			n.onNameResult(m)
		case *wire.Error:
			n.log.Info("relay refused a request", "err", m.Err())
		default:
			n.log.Debug("ignoring relay message", "type", m.Type())
		}
	}
}

// learn records a member the relay named, as a contact; it reports
// whether the lease verified.
func (n *Node) learn(l *wire.Lease, native bool) bool {
	if err := n.verifyLease(l); err != nil {
		n.log.Warn("relay sent a bad lease", "peer", l.Address.Short(), "err", err)
		return false
	}
	n.mu.Lock()
	n.known[l.Address] = known{lease: *l, native: native}
	d := n.dht
	n.mu.Unlock()
	if d != nil {
		d.Seen(l.Address)
	}
	return true
}

// onPeerLeft: the relay lost a node's link. Its data channel may well
// still work (the relay is only for signaling), so check it at once
// instead of dropping it.
func (n *Node) onPeerLeft(addr id.Address) {
	n.mu.Lock()
	delete(n.known, addr)
	p := n.peers[addr]
	n.mu.Unlock()
	if p == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := p.ping(ctx); err != nil {
			p.close("left the zone", true)
		}
	}()
}

// sendRelay queues m for the relay; it is dropped while the relay is away
// (a connection attempt that needed it times out and is retried).
func (n *Node) sendRelay(m wire.Message) {
	n.mu.Lock()
	out := n.relayOut
	n.mu.Unlock()
	if out == nil {
		return
	}
	select {
	case out <- m:
	default:
		n.log.Warn("relay queue full; dropping a message")
	}
}
