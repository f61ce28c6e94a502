package wire

import "ddt/shared/id"

// Overlay messages travel on peer links (data channels). Types 40–47.
const (
	TypeRPC    Type = 40
	TypeRouted Type = 41
)

// Overlay limits.
const (
	// MaxInner is the largest frame an RPC or Routed message carries: a
	// full frame less room for the envelope and the origin's lease.
	MaxInner = MaxFrame - 1024
	// MaxTTL is the most hops a routed message may still take.
	MaxTTL = 16
)

func init() {
	register(
		func() Message { return new(RPC) },
		func() Message { return new(Routed) },
	)
}

// RPC (peer ↔ peer, on a direct link or inside Routed) carries one DHT
// request or its reply. Frame is a complete encoded message (FindNode,
// Store, …, or Error for a refused request); Nonce pairs a reply with its
// request and is chosen by the requester.
//
//	uvarint nonce | bool reply | bytes frame (≤ MaxInner)
type RPC struct {
	Nonce uint64
	Reply bool
	Frame []byte
}

func (*RPC) Type() Type { return TypeRPC }
func (r *RPC) encode(e *encoder) {
	e.uvarint(r.Nonce)
	e.bool(r.Reply)
	e.bytes(r.Frame, MaxInner, "rpc frame")
}
func (r *RPC) decode(d *decoder) {
	r.Nonce = d.uvarint()
	r.Reply = d.bool()
	r.Frame = d.bytes(MaxInner, "rpc frame")
}

// Routed (peer → peer, hop by hop) carries Frame toward Dest through
// connected peers. Route, when the origin knows one (the reverse of the
// Path of a message that came from Dest), lists the hops to take; a hop
// whose next one in Route is not connected, and any hop of a message
// without Route, hands it to its connected peer closest to Dest by XOR,
// and only to one strictly closer than itself. Each hop appends itself to
// Path, so the destination learns the way back. TTL bounds it all. The
// origin proves itself with its lease and a signature over
// RoutedSignedBytes, which the destination checks before it trusts
// anything inside; Nonce makes each message unique so a replay is
// recognised, and Time (the origin's clock when it sent the message, Unix
// milliseconds) lets the destination refuse one too old or too far ahead
// to be remembered. Route and Path are not signed: hops write them.
// Frame is an RPC or a Signal (overlay signaling: Signal.Peer is the
// origin).
//
//	[20]dest | u8 ttl | uvarint nonce | varint time | lease origin | [64]sig |
//	count route, [20] each | count path, [20] each | bytes frame
//
// Route and Path hold at most MaxTTL addresses each.
type Routed struct {
	Dest   id.Address
	TTL    uint8
	Nonce  uint64
	Time   int64 // Unix milliseconds at the origin; signed
	Origin Lease
	Sig    [64]byte
	Route  []id.Address
	Path   []id.Address
	Frame  []byte
}

func encodeAddrs(e *encoder, as []id.Address, field string) {
	e.count(len(as), MaxTTL, field)
	for _, a := range as {
		e.fixed(a[:])
	}
}

func decodeAddrs(d *decoder, field string) []id.Address {
	n := d.count(MaxTTL, id.Len, field)
	var out []id.Address
	for i := 0; i < n && d.err == nil; i++ {
		var a id.Address
		d.fixed(a[:])
		out = append(out, a)
	}
	return out
}

func (*Routed) Type() Type { return TypeRouted }
func (r *Routed) encode(e *encoder) {
	e.fixed(r.Dest[:])
	e.u8(r.TTL)
	e.uvarint(r.Nonce)
	e.varint(r.Time)
	r.Origin.encode(e)
	e.fixed(r.Sig[:])
	encodeAddrs(e, r.Route, "route")
	encodeAddrs(e, r.Path, "path")
	e.bytes(r.Frame, MaxInner, "routed frame")
}
func (r *Routed) decode(d *decoder) {
	d.fixed(r.Dest[:])
	r.TTL = d.u8()
	if r.TTL > MaxTTL && d.err == nil {
		d.fail("ttl %d above %d", r.TTL, MaxTTL)
	}
	r.Nonce = d.uvarint()
	r.Time = d.varint()
	r.Origin.decode(d)
	d.fixed(r.Sig[:])
	r.Route = decodeAddrs(d, "route")
	r.Path = decodeAddrs(d, "path")
	r.Frame = d.bytes(MaxInner, "routed frame")
}

// RoutedSignedBytes is what the origin of a routed message signs: all but
// the TTL, Route and Path, which hops change. sent is Routed.Time.
func RoutedSignedBytes(dest id.Address, nonce uint64, sent int64, origin id.Address, frame []byte) []byte {
	e := encoder{b: make([]byte, 0, 80+len(frame))}
	e.fixed([]byte("ddt/routed/v2\x00"))
	e.fixed(dest[:])
	e.uvarint(nonce)
	e.varint(sent)
	e.fixed(origin[:])
	e.fixed(frame)
	return e.b
}
