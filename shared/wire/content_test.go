package wire

import (
	"bytes"

	"ddt/shared/id"
)

func init() {
	moreSamples = append(moreSamples, func() []Message {
		return []Message{
			&ChunkHave{Hashes: [][32]byte{{1}, {2, 3}}},
			&ChunkHas{Held: []bool{true, false}},
			&ChunkGet{ID: 7, Hash: [32]byte{9}, Offset: 1 << 20, Length: 4 << 20},
			&ChunkData{ID: 7, Offset: 65472, Data: bytes.Repeat([]byte{0xcd}, 1000)},
			&ChunkDone{ID: 7, Code: ChunkNotFound, Detail: "not held here"},
			&ReplicaAsk{Hash: [32]byte{4}, Size: 4 << 20, ContentType: "video/mp4", Manifest: true, Sources: []id.Address{{1}, {2}}, Unicast: true},
			&ReplicaAnswer{Accepted: false, Reason: "pledge full"},
		}
	})
}
