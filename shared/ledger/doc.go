// Package ledger is a zone's append-only public log: every public event a
// relay sequences (a username registration, a domain claim, a spend)
// becomes an entry at the next index, and anyone holding the relay's
// public key can check that an entry is in the log and that the log only
// ever grew. It is the Certificate Transparency shape, built on
// golang.org/x/mod/sumdb/tlog (RFC 6962 Merkle trees and proofs) and
// golang.org/x/mod/sumdb/note (signed notes).
//
// Entries are opaque bytes, at most MaxEntry each; callers encode their
// events. The package owns three things:
//
//   - [Log], the relay's own ledger in a store.Store. Append adds entries
//     and signs a checkpoint for the new size; Entry, Entries, Checkpoint,
//     InclusionProof and ConsistencyProof serve it.
//   - Verification, pure functions a node runs (in the browser too):
//     [OpenCheckpoint] checks a signed checkpoint, [VerifyInclusion] an
//     entry against it, [VerifyConsistency] that a newer checkpoint extends
//     an older one, and [Audit] that a whole list of entries makes a
//     checkpoint.
//   - [Mirror], a verified copy of another relay's log, grown only by
//     Update with a newer checkpoint, the entries since, and a consistency
//     proof; it refuses a fork and serves what it holds like a Log.
//     Bytes says how many entry bytes it holds (for callers that cap
//     it), and Delete or DeleteMirror removes it from the store.
//
// # Checkpoints
//
// A checkpoint is a signed note (C2SP tlog-checkpoint):
//
//	ddt.zone/<zone>/<key hex8>
//	<size>
//	<base64 root hash>
//
//	— ddt.zone/<zone>/<key hex8> <base64 key hash ‖ Ed25519 signature>
//
// The origin on the first line is also the note key name, so
// [VerifierKey] gives a key string that golang.org/x/mod/sumdb/note and
// other tlog tools accept. A checkpoint carries no time: Ed25519 signs
// deterministically, so a log has exactly one checkpoint per size, and
// freshness is left to whoever compares checkpoints over time.
//
// # Data flow
//
// Relay: events → Log.Append → store; peers ask for Checkpoint, Entries
// and proofs. Node: checkpoint, entry and proof arrive → OpenCheckpoint →
// VerifyInclusion; a later checkpoint → VerifyConsistency against the one
// it kept. Relay mirroring relay: newer checkpoint, entries since and
// ConsistencyProof(mirror size, new size) → Mirror.Update → store.
//
// # Storage and crashes
//
// A Log or Mirror keeps, under its prefix ("ledger/log/<origin>/" or
// "ledger/mirror/<origin>/"), its signed checkpoint, its entries in
// bundles of 16 and its stored hashes in tlog tiles of height 4. Growth
// writes entries and hashes first and the checkpoint last: the checkpoint
// is the commit, and on opening the size is the checkpoint's. Bundles and
// tiles only ever gain entries and hashes after the ones they hold, so a
// crash or store error mid-append leaves the committed tree intact and the
// stored hashes always agree with the stored size; whatever was written
// beyond it is ignored and overwritten by the next append.
package ledger
