package node

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"ddt/shared/backoff"
	"ddt/shared/clock"
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
	retry := backoff.Backoff{Min: 500 * time.Millisecond, Max: n.cfg.MaxBackoff}
	for {
		n.setRelay(current)
		wsURL, err := WebSocketURL(current)
		if err != nil { // a bad redirect or a corrupt saved list
			n.log.Warn("unusable relay URL", "url", current, "err", err)
			current = n.cfg.Relay
			continue
		}
		detail := "connecting to " + current
		if n.notice != "" {
			detail += ". " + n.notice
		}
		n.setState(StateConnecting, detail, 0)
		admitted, err := n.relaySession(ctx, wsURL)
		if err != nil && ctx.Err() == nil {
			n.log.Info("relay connection ended", "admitted", admitted, "err", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if admitted {
			retry.Reset()
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
			wait = retry.Next()
			n.setState(StateRetrying, unreachable(admitted, err), wait)
		}
		if !clock.Sleep(n.clock, wait, ctx.Done()) {
			return ctx.Err()
		}
	}
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
		p.close(ByeStopped, true)
	}
}

// relaySession runs one relay connection: admission, then the read loop
// until the connection ends. It reports whether the node was admitted.
func (n *Node) relaySession(ctx context.Context, wsURL string) (admitted bool, err error) {
	t0 := n.clock.Now()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := n.cfg.Dial(dctx, wsURL)
	cancel()
	if err != nil {
		return false, err
	}
	defer c.CloseNow()
	c.SetReadLimit(wire.MaxFrame)

	readFrame := func(ctx context.Context) ([]byte, error) {
		_, b, err := c.Read(ctx)
		return b, err
	}
	read := func(ctx context.Context) (wire.Message, error) {
		b, err := readFrame(ctx)
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
	tDial := clock.Since(n.clock, t0)
	ch, ok := m.(*wire.Challenge)
	if !ok {
		return false, fmt.Errorf("%w: expected a challenge", wire.ErrProtocol)
	}
	hello := &wire.Hello{SignKey: n.id.SignKey(), AgreeKey: n.id.AgreeKey(), Native: n.cfg.Native, Agent: n.cfg.Agent, Features: n.features}
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
	tAdm := clock.Since(n.clock, t0)
	if err := identity.VerifyLease(&adm.Lease, ch.RelayKey, n.clock.Now()); err != nil {
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
	n.lease, n.relayKey, n.relayFeatures = adm.Lease, ch.RelayKey, ch.Features
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
		"challengeMs", tDial.Milliseconds(), "admittedMs", tAdm.Milliseconds(), "totalMs", clock.Since(n.clock, t0).Milliseconds(), "features", ch.Features)
	// The routing table holds the relay's peers before anyone hears of the
	// admission, so a lookup right after ddt.ready has contacts to ask.
	n.federate(adm.Relays, adm.Flags)
	d := n.joinedAs(adm.Lease.Address)
	var dial []id.Address
	for i := range adm.Peers {
		if n.learn(&adm.Peers[i], adm.Natives[i]) {
			dial = append(dial, adm.Peers[i].Address)
		}
	}
	detail := "connected to zone " + adm.Lease.Zone
	if n.notice != "" {
		detail += ". " + n.notice // for as long as this node runs: its address is new
	}
	n.setState(StateAdmitted, detail, 0)

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
		n.connectTo(a, ViaRelay, false, true)
	}
	go n.announce(sctx, d, adm.Lease.Address)
	for _, fn := range n.admitted {
		go fn(sctx, adm.Lease)
	}
	for {
		b, err := readFrame(sctx)
		if err != nil {
			return true, err
		}
		m, err := wire.Unmarshal(b)
		if errors.Is(err, wire.ErrUnknownType) {
			n.unknownRelay.Add(1)
			t, _ := wire.TypeOf(b)
			n.log.Debug("skipping a relay message of a type this node does not know", "type", t)
			continue
		}
		if err != nil {
			n.log.Warn("bad message from relay", "err", err)
			return true, err
		}
		if r, ok := m.(wire.Reply); ok && n.deliverReply(r) {
			continue
		}
		if fn := n.handlers.relay[m.Type()]; fn != nil {
			fn(m)
			continue
		}
		n.unhandled.Add(1)
		n.log.Debug("ignoring relay message", "type", m.Type())
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
// before closing it; meanwhile the node is out of the routing table.
func (n *Node) onPeerLeft(addr id.Address) {
	n.mu.Lock()
	delete(n.known, addr)
	p := n.peers[addr]
	n.mu.Unlock()
	// Out of the routing table at once, so that no lookup meanwhile (ours,
	// or another node's through our answers) waits on it; back in if its
	// channel still answers.
	n.departed(addr)
	if p == nil || !p.checking.CompareAndSwap(false, true) {
		return // no channel to check (a closed tab's went with it), or one check at a time
	}
	go func() {
		defer p.checking.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if _, err := p.ping(ctx); err != nil {
			p.close("left the zone", true)
			return
		}
		if d := n.table(); d != nil {
			d.Seen(addr)
		}
	}()
}

// departed drops a node that has left — it said so as it stopped, or the
// relay lost it and its channel no longer answers — from the routing
// table at once. Kept there, every lookup that met it (and every node
// that learnt it from ours) would wait out a call to it, 2 s each, until
// it had failed three times.
func (n *Node) departed(addr id.Address) {
	if d := n.table(); d != nil {
		d.Remove(addr)
	}
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

// relayRequest is Host.RelayRequest for the capability with feature.
func (n *Node) relayRequest(ctx context.Context, feature string, mk func(id uint32) wire.Message) (wire.Reply, error) {
	for attempt := 0; ; attempt++ {
		out, done, err := n.awaitRelay(ctx)
		if err != nil {
			return nil, err
		}
		n.mu.Lock()
		offers, relay := n.relayFeatures.Has(feature), n.relay
		n.mu.Unlock()
		if !offers {
			return nil, Errorf(CodeUnavailable, []error{wire.ErrUnavailable, ErrUnsupported}, "the relay %s does not offer %s", relay, feature)
		}
		reply := make(chan wire.Reply, 1)
		n.mu.Lock()
		n.nextRelayID++
		rid := n.nextRelayID
		n.relayCalls[rid] = reply
		n.mu.Unlock()
		forget := func() {
			n.mu.Lock()
			delete(n.relayCalls, rid)
			n.mu.Unlock()
		}
		select {
		case out <- mk(rid):
		default:
			forget()
			return nil, Errorf(CodeUnavailable, []error{wire.ErrUnavailable}, "the relay connection is congested; try again")
		}
		select {
		case r := <-reply:
			return r, nil
		case <-done:
			forget()
			if attempt > 0 {
				return nil, Errorf(CodeUnavailable, []error{wire.ErrUnavailable}, "lost the connection to the relay twice while waiting for its answer")
			}
			n.log.Info("the relay connection dropped during a request; asking again on the next one", "feature", feature)
		case <-ctx.Done():
			forget()
			return nil, ctxError(ctx, "the relay did not answer in time")
		}
	}
}

// ctxError is the error for a request whose ctx ended: a timeout
// (wrapping ErrTimeout) unless the caller cancelled.
func ctxError(ctx context.Context, msg string) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return Errorf(CodeTimeout, []error{ErrTimeout, ctx.Err()}, "%s", msg)
}

// awaitRelay returns the current relay session's queue and the channel
// closed when it ends, waiting for the relay to come back if it is away.
func (n *Node) awaitRelay(ctx context.Context) (chan<- wire.Message, <-chan struct{}, error) {
	for {
		n.mu.Lock()
		if n.relayOut != nil {
			out, done := n.relayOut, n.relayDone
			n.mu.Unlock()
			return out, done, nil
		}
		if n.relayBack == nil {
			n.relayBack = make(chan struct{})
		}
		back := n.relayBack
		n.mu.Unlock()
		select {
		case <-back:
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil, nil, ctx.Err()
			}
			return nil, nil, Errorf(CodeUnavailable, []error{wire.ErrUnavailable, ctx.Err()}, "the relay is away; try again when the node is connected")
		}
	}
}

// deliverReply hands a relay's reply to the request waiting for it; it
// reports whether one was.
func (n *Node) deliverReply(r wire.Reply) bool {
	n.mu.Lock()
	ch, ok := n.relayCalls[r.ReplyID()]
	delete(n.relayCalls, r.ReplyID())
	n.mu.Unlock()
	if ok {
		ch <- r // buffered, and only this reply is sent to it
	}
	return ok
}
