// Package zoneledger is the relay's zone ledger service: this zone's
// public log, the mirrors of the federated zones' logs, the mirroring
// over federation links, and the /ledger/… HTTP endpoints.
//
// The zone's log is a ddt/shared/ledger Log in the relay's store, signed
// with the relay key under the origin ledger.ZoneOrigin(zone, key).
// Sequence appends one public event and returns its index and the signed
// checkpoint that includes it (relay/registrar sequences username claims
// this way).
//
// Mirroring is the link service wire.FeatureLedger: the service registers
// its frames with relay/federation, and sends them only over links whose
// other side announced the feature. On such a link each side announces
// its checkpoint when the link comes up, whenever its log grows, and with
// its summaries (federation.Periodic); a side whose mirror is behind asks
// for the entries since (LedgerGetEntries, page by page) and for the
// consistency proof from its mirror's size (LedgerGetProof), and hands
// them all at once to ledger.Mirror.Update. Each link's round is state of
// that link's read loop alone. A fork — a checkpoint the mirror's tree
// contradicts — is logged with both signed notes, kept in the store
// under StoreForks as evidence, counted, and ends ledger sync on that
// link; nothing of the forked view is accepted.
//
// Mirroring is bounded against a hostile linked relay: a round fetches
// at most MaxCatchUp entries and MaxRoundBytes of them, and is abandoned,
// holding nothing, past either or past RoundTimeout on Config.Clock; one
// relay key is mirrored up to Config.MaxMirrorBytes and no further; only
// relays Config.Trusted trusts are mirrored, and the mirrors of others
// are deleted (at New, every summary round, Prune). Mirrors are recorded in
// the store and reopened at start; OnMirrored hooks see every update
// (relay/registrar indexes the names a mirror holds).
//
// Routes serves the log and the mirrors: checkpoint, entries, inclusion
// and consistency proofs, under /ledger/… and /ledger/zone/<zone>/….
package zoneledger
