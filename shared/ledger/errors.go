package ledger

import "errors"

// Errors returned by this package, always wrapped with context; test for
// them with errors.Is.
var (
	// ErrNotFound: an index, range or tree size beyond the log.
	ErrNotFound = errors.New("ledger: not found")
	// ErrTooLarge: an entry longer than MaxEntry or a checkpoint longer
	// than MaxCheckpoint.
	ErrTooLarge = errors.New("ledger: too large")
	// ErrMalformed: a checkpoint, origin or key that cannot be parsed or used.
	ErrMalformed = errors.New("ledger: malformed")
	// ErrBadSignature: a checkpoint that is unsigned, signed by another
	// key, or whose signature does not verify.
	ErrBadSignature = errors.New("ledger: bad signature")
	// ErrWrongOrigin: a checkpoint of another log.
	ErrWrongOrigin = errors.New("ledger: wrong origin")
	// ErrBadProof: a proof, an entry or a list of entries that does not
	// match the checkpoint it is checked against.
	ErrBadProof = errors.New("ledger: bad proof")
	// ErrFork: two checkpoints of one log that cannot both be true — same
	// size and different roots, or a newer tree that cannot be shown to
	// extend an older one. Keep both signed notes: together they are
	// evidence that the log's key signed a split view.
	ErrFork = errors.New("ledger: fork")
	// ErrCorrupt: stored state that disagrees with itself (a missing or
	// short record, or hashes that do not match the stored checkpoint).
	ErrCorrupt = errors.New("ledger: corrupt store")
)
