package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"ddt/shared/id"
	"ddt/shared/identity"
	"ddt/shared/store"
	"ddt/shared/wire"
)

// Hub limits and timings.
const (
	leaseTTL         = 7 * 24 * time.Hour
	helloTimeout     = 10 * time.Second
	pingInterval     = 15 * time.Second
	outQueue         = 512 // frames queued to one node before it counts as stuck
	closestPeers     = 8   // in a newcomer's peer list: the closest addresses...
	randomPeers      = 8   // ...plus this many random others
	signalRate       = 100 // signals per second per node, sustained
	signalBurst      = 400
	maxViolations    = 50  // rate-limited or misdirected messages before a node is cut off
	maxJoining       = 256 // connections between upgrade and admission at once
	refuseRetryMs    = 30_000
	storeKeyRelay    = "relay/key"
	storeLeasePrefix = "lease/"
)

// HubConfig configures a zone.
type HubConfig struct {
	Zone       string
	MaxNodes   int
	Redirect   string   // another relay to name when the zone is full
	ICEServers []string // handed to admitted nodes
	Store      store.Store
	Logger     *slog.Logger
}

// Hub is one zone: admission, leases, signaling and membership news.
type Hub struct {
	cfg HubConfig
	log *slog.Logger
	key *identity.Identity

	mu      sync.Mutex
	clients map[id.Address]*client
	joining chan struct{} // a slot per connection not yet admitted

	admitted atomic.Int64 // admissions since start
	refused  atomic.Int64
	signals  atomic.Int64 // signals forwarded
	dropped  atomic.Int64 // messages refused (malformed, misdirected, rate-limited)
}

type client struct {
	hub     *Hub
	conn    *websocket.Conn
	lease   wire.Lease
	native  bool
	agent   string
	out     chan []byte
	lim     *rate.Limiter
	done    chan struct{} // closed by stop
	flushed chan struct{} // closed when the writer has drained and closed the link
	once    sync.Once
	why     string
}

// NewHub loads or creates the relay's signing key.
func NewHub(cfg HubConfig) (*Hub, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{cfg: cfg, log: cfg.Logger, clients: make(map[id.Address]*client), joining: make(chan struct{}, maxJoining)}
	var err error
	if h.key, err = identity.LoadOrCreate(cfg.Store, storeKeyRelay); err != nil {
		return nil, fmt.Errorf("relay key: %w", err)
	}
	return h, nil
}

// Key returns the relay's public signing key.
func (h *Hub) Key() [32]byte { return h.key.SignKey() }

// Stats is what /healthz reports.
type Stats struct {
	Zone     string `json:"zone"`
	RelayKey string `json:"relayKey"`
	Nodes    int    `json:"nodes"`
	MaxNodes int    `json:"maxNodes"`
	Admitted int64  `json:"admitted"`
	Refused  int64  `json:"refused"`
	Signals  int64  `json:"signals"`
	Dropped  int64  `json:"dropped"`
}

// Stats returns the zone's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	n := len(h.clients)
	h.mu.Unlock()
	k := h.Key()
	return Stats{Zone: h.cfg.Zone, RelayKey: hex.EncodeToString(k[:]), Nodes: n, MaxNodes: h.cfg.MaxNodes,
		Admitted: h.admitted.Load(), Refused: h.refused.Load(), Signals: h.signals.Load(), Dropped: h.dropped.Load()}
}

// JoinSlot reserves room for one more connection to go through admission;
// false means too many are joining at once (a connection flood) and the
// caller should refuse before upgrading. Serve releases the slot.
func (h *Hub) JoinSlot() bool {
	select {
	case h.joining <- struct{}{}:
		return true
	default:
		h.dropped.Add(1)
		return false
	}
}

// Serve runs one node's WebSocket until it closes. The caller holds a
// JoinSlot, which Serve releases once admission is decided.
func (h *Hub) Serve(ctx context.Context, conn *websocket.Conn, remote string) {
	defer conn.CloseNow()
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { <-h.joining }) }
	defer release()
	conn.SetReadLimit(wire.MaxFrame)
	log := h.log.With("remote", remote)

	ch := &wire.Challenge{Zone: h.cfg.Zone, RelayKey: h.Key()}
	rand.Read(ch.Nonce[:])
	hctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	if err := writeMsg(hctx, conn, ch); err != nil {
		return
	}
	hello, err := readHello(hctx, conn)
	if err != nil {
		log.Info("admission failed", "err", err)
		h.dropped.Add(1)
		writeMsg(hctx, conn, &wire.Error{Code: wire.CodeOf(err), Message: err.Error()})
		conn.Close(websocket.StatusPolicyViolation, "admission failed")
		return
	}
	if !identity.Verify(hello.SignKey, wire.HelloSignedBytes(ch, hello.SignKey, hello.AgreeKey, hello.Native), hello.Sig) {
		log.Info("admission refused: bad signature")
		h.dropped.Add(1)
		writeMsg(hctx, conn, &wire.Error{Code: wire.CodeBadSignature, Message: "hello signature does not verify"})
		conn.Close(websocket.StatusPolicyViolation, "bad signature")
		return
	}
	lease, err := h.leaseFor(hello.SignKey, hello.AgreeKey)
	if err != nil {
		log.Error("lease store", "err", err)
		writeMsg(hctx, conn, &wire.Error{Code: wire.CodeInternal, Message: "relay storage failed"})
		return
	}
	c := &client{hub: h, conn: conn, lease: lease, native: hello.Native, agent: hello.Agent,
		out: make(chan []byte, outQueue), lim: rate.NewLimiter(signalRate, signalBurst), done: make(chan struct{}), flushed: make(chan struct{})}

	adm, old, ok := h.register(c)
	if !ok {
		h.refused.Add(1)
		reason := fmt.Sprintf("zone %s is full: it admits at most %d %s", h.cfg.Zone, h.cfg.MaxNodes, plural(h.cfg.MaxNodes, "node", "nodes"))
		log.Info("admission refused: zone full", "nodes", h.cfg.MaxNodes)
		writeMsg(hctx, conn, &wire.Refused{Code: wire.CodeZoneFull, Reason: reason, Redirect: h.cfg.Redirect, RetryAfterMs: refuseRetryMs})
		conn.Close(websocket.StatusTryAgainLater, "zone full")
		return
	}
	h.admitted.Add(1)
	release()
	if old != nil {
		old.stop("replaced by a new connection from the same node")
	}
	log = log.With("node", lease.Address.Short())
	log.Info("admitted", "native", hello.Native, "agent", hello.Agent, "peers", len(adm.Peers))
	if err := writeMsg(hctx, conn, adm); err != nil {
		h.unregister(c)
		return
	}
	cancel()
	h.announce(c, &wire.PeerJoined{Lease: lease, Native: hello.Native})

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go c.writeLoop()
	go c.pingLoop(ctx)
	c.readLoop(ctx, log)
	c.stop(whyGone)
	<-c.flushed
	if h.unregister(c) {
		h.announce(c, &wire.PeerLeft{Address: lease.Address})
	}
	log.Info("node left", "why", c.why)
}

func readHello(ctx context.Context, conn *websocket.Conn) (*wire.Hello, error) {
	typ, b, err := conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, fmt.Errorf("%w: text frame", wire.ErrMalformed)
	}
	m, err := wire.Unmarshal(b)
	if err != nil {
		return nil, err
	}
	hello, ok := m.(*wire.Hello)
	if !ok {
		return nil, fmt.Errorf("%w: expected Hello, got type %d", wire.ErrProtocol, m.Type())
	}
	return hello, nil
}

func writeMsg(ctx context.Context, conn *websocket.Conn, m wire.Message) error {
	b, err := wire.Marshal(m)
	if err != nil {
		return err
	}
	return conn.Write(ctx, websocket.MessageBinary, b)
}

// leaseFor issues a lease for a node's keys. The relay keeps the last
// lease of every key it admitted: a returning node gets the same nonce, so
// the same address, across relay restarts.
func (h *Hub) leaseFor(signKey, agreeKey [32]byte) (wire.Lease, error) {
	k := storeLeasePrefix + hex.EncodeToString(signKey[:])
	var nonce [16]byte
	b, err := h.cfg.Store.Get(k)
	switch {
	case err == nil:
		m, err := wire.Unmarshal(b)
		old, ok := m.(*wire.Lease)
		if err != nil || !ok {
			return wire.Lease{}, fmt.Errorf("stored lease for %x is corrupt: %v", signKey[:4], err)
		}
		nonce = old.Nonce
	case errors.Is(err, store.ErrNotFound):
		rand.Read(nonce[:])
	default:
		return wire.Lease{}, err
	}
	l := h.key.IssueLease(signKey, agreeKey, nonce, h.cfg.Zone, time.Now(), leaseTTL)
	if b, err = wire.Marshal(&l); err == nil {
		err = h.cfg.Store.Put(k, b)
	}
	return l, err
}

// register admits c unless the zone is full; a node that reconnects
// replaces its old link, which is returned.
func (h *Hub) register(c *client) (adm *wire.Admitted, old *client, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old = h.clients[c.lease.Address]
	if old == nil && len(h.clients) >= h.cfg.MaxNodes {
		return nil, nil, false
	}
	h.clients[c.lease.Address] = c
	adm = &wire.Admitted{Lease: c.lease, ICEServers: h.cfg.ICEServers}
	for _, p := range h.pickPeers(c.lease.Address) {
		adm.Peers = append(adm.Peers, p.lease)
		adm.Natives = append(adm.Natives, p.native)
	}
	return adm, old, true
}

// pickPeers returns the closest members to addr plus random others.
// h.mu is held.
func (h *Hub) pickPeers(addr id.Address) []*client {
	all := make([]*client, 0, len(h.clients))
	for a, c := range h.clients {
		if a != addr {
			all = append(all, c)
		}
	}
	sort.Slice(all, func(i, j int) bool { return id.Closer(addr, all[i].lease.Address, all[j].lease.Address) })
	if len(all) <= closestPeers+randomPeers {
		return all
	}
	picked := all[:closestPeers:closestPeers]
	rest := all[closestPeers:]
	for i := 0; i < randomPeers; i++ {
		j, _ := rand.Int(rand.Reader, big.NewInt(int64(len(rest)-i)))
		k := i + int(j.Int64())
		rest[i], rest[k] = rest[k], rest[i]
		picked = append(picked, rest[i])
	}
	return picked
}

// unregister removes c if it is still the current link for its address.
func (h *Hub) unregister(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.clients[c.lease.Address] != c {
		return false
	}
	delete(h.clients, c.lease.Address)
	return true
}

// announce sends m to every member but c.
func (h *Hub) announce(c *client, m wire.Message) {
	b, err := wire.Marshal(m)
	if err != nil {
		return
	}
	h.mu.Lock()
	others := make([]*client, 0, len(h.clients))
	for _, o := range h.clients {
		if o != c {
			others = append(others, o)
		}
	}
	h.mu.Unlock()
	for _, o := range others {
		o.send(b)
	}
}

func (h *Hub) lookup(addr id.Address) *client {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clients[addr]
}

// send queues a frame; a node whose queue is full is too slow and is cut.
func (c *client) send(b []byte) {
	select {
	case c.out <- b:
	case <-c.done:
	default:
		c.stop("send queue overflow")
	}
}

// whyGone is why a link ended that the node closed or lost.
const whyGone = "connection closed by the node or lost"

// stop ends the link; the writer sends what is queued (errors explaining
// why, typically) and then closes it.
func (c *client) stop(why string) {
	c.once.Do(func() {
		c.why = why
		close(c.done)
	})
}

func (c *client) writeLoop() {
	defer close(c.flushed)
	write := func(b []byte, limit time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		return c.conn.Write(ctx, websocket.MessageBinary, b)
	}
	for {
		select {
		case b := <-c.out:
			if err := write(b, 10*time.Second); err != nil {
				c.stop("write failed")
				c.conn.CloseNow()
				return
			}
		case <-c.done:
			deadline := time.Now().Add(250 * time.Millisecond)
			for len(c.out) > 0 && time.Now().Before(deadline) {
				if write(<-c.out, time.Until(deadline)) != nil {
					break
				}
			}
			if c.why == whyGone {
				c.conn.CloseNow() // nobody to say goodbye to
			} else {
				c.conn.Close(websocket.StatusPolicyViolation, c.why)
			}
			return
		}
	}
}

func (c *client) pingLoop(ctx context.Context) {
	t := time.NewTicker(pingInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.conn.Ping(pctx)
			cancel()
			if err != nil {
				c.stop("no pong")
				return
			}
		case <-c.done:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (c *client) reject(ctx context.Context, code wire.Code, msg string) {
	b, _ := wire.Marshal(&wire.Error{Code: code, Message: msg})
	c.send(b)
}

// readLoop forwards a node's signaling until the link ends.
func (c *client) readLoop(ctx context.Context, log *slog.Logger) {
	h := c.hub
	violations := 0
	for {
		typ, b, err := c.conn.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			switch {
			case errors.As(err, &ce) && ce.Code == websocket.StatusMessageTooBig:
				log.Warn("oversized frame; closing", "err", err)
				h.dropped.Add(1)
				c.stop("oversized frame")
			case websocket.CloseStatus(err) == websocket.StatusNormalClosure || websocket.CloseStatus(err) == websocket.StatusGoingAway:
				c.stop(whyGone)
			default:
				c.stop(whyGone)
				log.Debug("read", "err", err)
			}
			return
		}
		var m wire.Message
		if typ != websocket.MessageBinary {
			err = fmt.Errorf("%w: text frame", wire.ErrMalformed)
		} else {
			m, err = wire.Unmarshal(b)
		}
		if err != nil {
			h.dropped.Add(1)
			log.Warn("malformed message; closing", "err", err)
			c.reject(ctx, wire.CodeOf(err), err.Error())
			c.stop("malformed message")
			return
		}
		sig, ok := m.(*wire.Signal)
		if !ok {
			h.dropped.Add(1)
			violations++
			c.reject(ctx, wire.CodeProtocol, fmt.Sprintf("nodes may send only signals here, not type %d", m.Type()))
		} else if !c.lim.Allow() {
			h.dropped.Add(1)
			violations++
			c.reject(ctx, wire.CodeRateLimited, "signaling faster than allowed")
		} else if to := h.lookup(sig.Peer); to == nil || to == c {
			h.dropped.Add(1)
			violations++
			c.reject(ctx, wire.CodeUnknownPeer, "no node "+sig.Peer.String()+" in this zone")
		} else {
			fwd := *sig
			fwd.Peer = c.lease.Address
			if b, err := wire.Marshal(&fwd); err == nil {
				h.signals.Add(1)
				to.send(b)
			}
		}
		if violations > maxViolations {
			log.Warn("too many refused messages; closing", "count", violations)
			c.stop("too many refused messages")
			return
		}
	}
}

// ReleaseSlot gives back a JoinSlot that did not reach Serve.
func (h *Hub) ReleaseSlot() { <-h.joining }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
