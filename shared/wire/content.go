package wire

import "ddt/shared/id"

// Content messages (types 80–86) travel between peers that announced
// FeatureContent. ChunkHave and ReplicaAsk are requests
// (Host.Request: over a direct link or routed) with ChunkHas and
// ReplicaAnswer as replies. A download is a ChunkGet on the control
// channel to a connected peer, answered on the bulk channel by ChunkData
// frames and one ChunkDone. Hashes are SHA-256 (package chunk); a
// receiver checks every chunk against its hash before it keeps it.
const (
	TypeChunkHave     Type = 80 // which of these chunks do you hold?
	TypeChunkHas      Type = 81 // the answer: one bit per hash
	TypeChunkGet      Type = 82 // send me bytes of a chunk
	TypeChunkData     Type = 83 // a piece of it (bulk channel)
	TypeChunkDone     Type = 84 // the end of a ChunkGet's answer (bulk channel)
	TypeReplicaAsk    Type = 85 // please hold a replica of this chunk
	TypeReplicaAnswer Type = 86 // whether it will
)

// FeatureContent is the content capability: chunks, providers,
// replication (package content).
const FeatureContent = "content"

// Content limits.
const (
	MaxHaveHashes  = 256           // hashes in one ChunkHave
	MaxChunkData   = MaxFrame - 64 // bytes of data in one ChunkData
	MaxChunkBytes  = 4 << 20       // bytes one ChunkGet may ask for: a whole chunk
	MaxSources     = 8             // sources named in a ReplicaAsk
	MaxContentType = 127           // bytes of a media type
	MaxDoneDetail  = 256           // bytes of a ChunkDone's detail
	ChunkOK        = 0             // ChunkDone.Code: every byte asked for was sent
	ChunkNotFound  = 1             // ChunkDone.Code: the chunk is not held here
	ChunkBusy      = 2             // ChunkDone.Code: too many transfers at once; ask elsewhere
	ChunkRefused   = 3             // ChunkDone.Code: the request was out of range
)

func init() {
	register(
		func() Message { return new(ChunkHave) },
		func() Message { return new(ChunkHas) },
		func() Message { return new(ChunkGet) },
		func() Message { return new(ChunkData) },
		func() Message { return new(ChunkDone) },
		func() Message { return new(ReplicaAsk) },
		func() Message { return new(ReplicaAnswer) },
	)
}

// ChunkHave asks a node which of Hashes it holds.
//
//	count (≤ MaxHaveHashes) | count × [32]hash
type ChunkHave struct {
	Hashes [][32]byte
}

func (*ChunkHave) Type() Type { return TypeChunkHave }
func (m *ChunkHave) encode(e *encoder) {
	e.count(len(m.Hashes), MaxHaveHashes, "hashes")
	for _, h := range m.Hashes {
		e.fixed(h[:])
	}
}
func (m *ChunkHave) decode(d *decoder) {
	n := d.count(MaxHaveHashes, 32, "hashes")
	for i := 0; i < n && d.err == nil; i++ {
		var h [32]byte
		d.fixed(h[:])
		m.Hashes = append(m.Hashes, h)
	}
}

// ChunkHas answers a ChunkHave: Held[i] says whether Hashes[i] is held.
//
//	count (≤ MaxHaveHashes) | count × bool
type ChunkHas struct {
	Held []bool
}

func (*ChunkHas) Type() Type { return TypeChunkHas }
func (m *ChunkHas) encode(e *encoder) {
	e.count(len(m.Held), MaxHaveHashes, "held")
	for _, b := range m.Held {
		e.bool(b)
	}
}
func (m *ChunkHas) decode(d *decoder) {
	n := d.count(MaxHaveHashes, 1, "held")
	for i := 0; i < n && d.err == nil; i++ {
		m.Held = append(m.Held, d.bool())
	}
}

// ChunkGet asks a connected peer for Length bytes of chunk Hash from
// Offset. ID is the asker's, and tags the answer: ChunkData frames in
// order, then a ChunkDone, all on the bulk channel.
//
//	uvarint id | [32]hash | uvarint offset | uvarint length (≤ MaxChunkBytes)
type ChunkGet struct {
	ID     uint32
	Hash   [32]byte
	Offset uint32
	Length uint32
}

func (*ChunkGet) Type() Type { return TypeChunkGet }
func (m *ChunkGet) encode(e *encoder) {
	e.uvarint(uint64(m.ID))
	e.fixed(m.Hash[:])
	e.uvarint(uint64(m.Offset))
	e.uvarint(uint64(m.Length))
}
func (m *ChunkGet) decode(d *decoder) {
	m.ID = d.uint32("id")
	d.fixed(m.Hash[:])
	m.Offset = d.uint32("offset")
	m.Length = d.uint32("length")
	if d.err == nil && (m.Length > MaxChunkBytes || m.Offset > MaxChunkBytes) {
		d.fail("chunk range %d+%d beyond %d bytes", m.Offset, m.Length, MaxChunkBytes)
	}
}

// ChunkData is Data of the chunk a ChunkGet asked for, at Offset.
//
//	uvarint id | uvarint offset | bytes data (≤ MaxChunkData)
type ChunkData struct {
	ID     uint32
	Offset uint32
	Data   []byte
}

func (*ChunkData) Type() Type { return TypeChunkData }
func (m *ChunkData) encode(e *encoder) {
	e.uvarint(uint64(m.ID))
	e.uvarint(uint64(m.Offset))
	e.bytes(m.Data, MaxChunkData, "chunk data")
}
func (m *ChunkData) decode(d *decoder) {
	m.ID = d.uint32("id")
	m.Offset = d.uint32("offset")
	m.Data = d.bytes(MaxChunkData, "chunk data")
}

// ChunkDone ends the answer to ChunkGet ID: Code is ChunkOK once every
// byte was sent, else why not (ChunkNotFound, ChunkBusy, ChunkRefused),
// with Detail for people.
//
//	uvarint id | u8 code | string detail (≤ MaxDoneDetail)
type ChunkDone struct {
	ID     uint32
	Code   uint8
	Detail string
}

func (*ChunkDone) Type() Type { return TypeChunkDone }
func (m *ChunkDone) encode(e *encoder) {
	e.uvarint(uint64(m.ID))
	e.u8(m.Code)
	e.string(m.Detail, MaxDoneDetail, "detail")
}
func (m *ChunkDone) decode(d *decoder) {
	m.ID = d.uint32("id")
	m.Code = d.u8()
	m.Detail = d.string(MaxDoneDetail, "detail")
}

// ReplicaAsk asks a node to hold a replica of chunk Hash (Size bytes, of
// content of media type ContentType, which the asked node's cache policy
// may refuse), fetching it from Sources (nodes that hold it; the asker
// first). Manifest says the chunk is a manifest; Unicast that it is
// unicast content, whose single replica its holder never repairs toward
// the public count (only the publisher keeps it placed). The answer is a
// ReplicaAnswer; the asked node fetches and announces itself afterwards.
//
//	[32]hash | uvarint size | string type | bool manifest | count sources, [20] each | bool unicast
type ReplicaAsk struct {
	Hash        [32]byte
	Size        uint32
	ContentType string
	Manifest    bool
	Sources     []id.Address
	Unicast     bool
}

func (*ReplicaAsk) Type() Type { return TypeReplicaAsk }
func (m *ReplicaAsk) encode(e *encoder) {
	e.fixed(m.Hash[:])
	e.uvarint(uint64(m.Size))
	e.string(m.ContentType, MaxContentType, "content type")
	e.bool(m.Manifest)
	e.count(len(m.Sources), MaxSources, "sources")
	for _, a := range m.Sources {
		e.fixed(a[:])
	}
	e.bool(m.Unicast)
}
func (m *ReplicaAsk) decode(d *decoder) {
	d.fixed(m.Hash[:])
	m.Size = d.uint32("size")
	if d.err == nil && m.Size > MaxChunkBytes {
		d.fail("replica of %d bytes, a chunk is at most %d", m.Size, MaxChunkBytes)
	}
	m.ContentType = d.string(MaxContentType, "content type")
	m.Manifest = d.bool()
	n := d.count(MaxSources, id.Len, "sources")
	for i := 0; i < n && d.err == nil; i++ {
		var a id.Address
		d.fixed(a[:])
		m.Sources = append(m.Sources, a)
	}
	m.Unicast = d.bool()
}

// ReplicaAnswer answers a ReplicaAsk: Accepted, or Reason (for people)
// why not — a full pledge, a type the node's policy does not cache.
//
//	bool accepted | string reason (≤ MaxDoneDetail)
type ReplicaAnswer struct {
	Accepted bool
	Reason   string
}

func (*ReplicaAnswer) Type() Type { return TypeReplicaAnswer }
func (m *ReplicaAnswer) encode(e *encoder) {
	e.bool(m.Accepted)
	e.string(m.Reason, MaxDoneDetail, "reason")
}
func (m *ReplicaAnswer) decode(d *decoder) {
	m.Accepted = d.bool()
	m.Reason = d.string(MaxDoneDetail, "reason")
}
