package ledger

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	// MaxEntry is the longest entry, in bytes, a log accepts.
	MaxEntry = 4 << 10
	// MaxCheckpoint is the longest signed checkpoint, in bytes, that
	// OpenCheckpoint reads: room for the body and a few dozen cosignatures.
	MaxCheckpoint = 16 << 10
	// MaxOrigin is the longest origin, in bytes.
	MaxOrigin = 256
	// MaxBatch is the most entries Entries returns in one call.
	MaxBatch = 256
)

// emptyRoot is the root hash of the empty tree: SHA-256 of nothing
// (RFC 6962, section 2.1).
var emptyRoot, _ = tlog.TreeHash(0, nil)

// Checkpoint is a log's tree head: its origin, its size in entries and its
// Merkle root hash (RFC 6962). Signed, it travels as a note in the C2SP
// tlog-checkpoint shape:
//
//	<origin>
//	<size in decimal>
//	<base64 root hash>
//
//	— <origin> <base64 key hash ‖ Ed25519 signature>
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
}

// String returns the checkpoint's note text (without signatures).
func (c Checkpoint) String() string {
	return c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Hash[:]) + "\n"
}

// parseCheckpoint reads a checkpoint note's text. The three lines above are
// required and strict (decimal without leading zeros, padded base64 of 32
// bytes); extension lines after them must be non-empty and are ignored, as
// C2SP tlog-checkpoint asks.
func parseCheckpoint(text string) (Checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint text does not end in a newline", ErrMalformed)
	}
	lines := strings.Split(text[:len(text)-1], "\n")
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint has %d lines, want at least 3", ErrMalformed, len(lines))
	}
	for i, l := range lines {
		if l == "" {
			return Checkpoint{}, fmt.Errorf("%w: checkpoint line %d is empty", ErrMalformed, i+1)
		}
	}
	var c Checkpoint
	c.Origin = lines[0]
	if err := checkOrigin(c.Origin); err != nil {
		return Checkpoint{}, err
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint size %.30q is not a decimal number", ErrMalformed, lines[1])
	}
	c.Size = size
	h, err := base64.StdEncoding.Strict().DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize || len(lines[2]) != base64.StdEncoding.EncodedLen(tlog.HashSize) {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint root %.60q is not a base64 SHA-256 hash", ErrMalformed, lines[2])
	}
	copy(c.Hash[:], h)
	if c.Size == 0 && c.Hash != emptyRoot {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of the empty tree has root %v", ErrMalformed, c.Hash)
	}
	return c, nil
}

// checkOrigin reports why origin cannot name a log, if it cannot. An origin
// doubles as the note key name, so it follows the note rules: non-empty
// UTF-8 without spaces or '+'.
func checkOrigin(origin string) error {
	switch {
	case origin == "":
		return fmt.Errorf("%w: empty origin", ErrMalformed)
	case len(origin) > MaxOrigin:
		return fmt.Errorf("%w: origin of %d bytes, limit %d", ErrMalformed, len(origin), MaxOrigin)
	case !utf8.ValidString(origin), strings.IndexFunc(origin, unicode.IsSpace) >= 0, strings.Contains(origin, "+"):
		return fmt.Errorf("%w: origin %q is not a note key name (UTF-8, no spaces, no '+')", ErrMalformed, origin)
	}
	return nil
}

// VerifierKey returns the note verifier key ("<origin>+<key hash>+<base64
// key>") that checks the checkpoints of the log named origin and signed by
// pub: the form golang.org/x/mod/sumdb/note and other C2SP tools accept.
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	if err := checkOrigin(origin); err != nil {
		return "", err
	}
	if len(pub) != ed25519.PublicKeySize {
		return "", fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrMalformed, len(pub))
	}
	return note.NewEd25519VerifierKey(origin, pub)
}

// verifier returns the note verifier for origin and pub.
func verifier(origin string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := VerifierKey(origin, pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}

// signer signs checkpoint notes with a log's Ed25519 key. It implements
// note.Signer directly rather than through note.NewSigner, so the private
// key is never written out as a string.
type signer struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func newSigner(origin string, key ed25519.PrivateKey) (*signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: Ed25519 private key of %d bytes", ErrMalformed, len(key))
	}
	v, err := verifier(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	return &signer{name: origin, hash: v.KeyHash(), key: key}, nil
}

func (s *signer) Name() string                    { return s.name }
func (s *signer) KeyHash() uint32                 { return s.hash }
func (s *signer) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// sign returns c as a signed note. Ed25519 signatures are deterministic, so
// one key signs one checkpoint to the same bytes every time.
func (s *signer) sign(c Checkpoint) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.String()}, s)
}

// OpenCheckpoint checks a signed checkpoint of the log named origin whose
// key is pub, and returns what it says. It fails with ErrTooLarge beyond
// MaxCheckpoint; ErrBadSignature when the note is unsigned, signed only by
// other keys, or its signature does not verify; ErrWrongOrigin when it is
// another log's; ErrMalformed when it does not parse. Signatures by other
// keys (cosigners) are allowed beside the log's own.
func OpenCheckpoint(msg []byte, origin string, pub ed25519.PublicKey) (Checkpoint, error) {
	if len(msg) > MaxCheckpoint {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of %d bytes, limit %d", ErrTooLarge, len(msg), MaxCheckpoint)
	}
	v, err := verifier(origin, pub)
	if err != nil {
		return Checkpoint{}, err
	}
	if !bytes.Contains(msg, []byte("\n\n")) {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of %s carries no signature", ErrBadSignature, origin)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		// Name the other log rather than blame the signature.
		if first, _, _ := strings.Cut(unverified.Note.Text, "\n"); first != origin {
			return Checkpoint{}, fmt.Errorf("%w: checkpoint of %.80q, want %s", ErrWrongOrigin, first, origin)
		}
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of %s not signed by key %08x", ErrBadSignature, origin, v.KeyHash())
	case errors.As(err, &invalid):
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of %s: %v", ErrBadSignature, origin, err)
	case err != nil:
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of %s: %v", ErrMalformed, origin, err)
	}
	c, err := parseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != origin {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint of %q signed by the key of %s", ErrWrongOrigin, c.Origin, origin)
	}
	return c, nil
}

// VerifyInclusion checks that entry is the index'th entry (from 0) of the
// tree cp describes, using a proof from InclusionProof(index, cp.Size).
// It fails with ErrBadProof.
func VerifyInclusion(cp Checkpoint, index int64, entry []byte, proof tlog.RecordProof) error {
	if index < 0 || index >= cp.Size {
		return fmt.Errorf("%w: entry %d is outside %s at size %d", ErrBadProof, index, cp.Origin, cp.Size)
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, index, tlog.RecordHash(entry)); err != nil {
		return fmt.Errorf("%w: entry %d is not in %s at size %d: %v", ErrBadProof, index, cp.Origin, cp.Size, err)
	}
	return nil
}

// VerifyConsistency checks that the tree newer describes extends the one
// older describes (the log only appended in between), using a proof from
// ConsistencyProof(older.Size, newer.Size). Both checkpoints should come
// from OpenCheckpoint. It fails with ErrWrongOrigin for two logs, ErrFork
// for one size with two roots, and ErrBadProof otherwise.
func VerifyConsistency(older, newer Checkpoint, proof tlog.TreeProof) error {
	switch {
	case older.Origin != newer.Origin:
		return fmt.Errorf("%w: consistency between %s and %s", ErrWrongOrigin, older.Origin, newer.Origin)
	case older.Size > newer.Size:
		return fmt.Errorf("%w: %s: size %d is not newer than %d", ErrBadProof, older.Origin, newer.Size, older.Size)
	case older.Size == newer.Size && older.Size > 0 && older.Hash != newer.Hash:
		return fmt.Errorf("%w: %s at size %d has roots %v and %v", ErrFork, older.Origin, older.Size, older.Hash, newer.Hash)
	case older.Size == 0 || older.Size == newer.Size:
		// The empty tree is a prefix of every tree and a tree of itself;
		// such proofs are empty.
		if len(proof) != 0 {
			return fmt.Errorf("%w: %s: %d hashes where none are needed", ErrBadProof, older.Origin, len(proof))
		}
		return nil
	}
	if err := tlog.CheckTree(proof, newer.Size, newer.Hash, older.Size, older.Hash); err != nil {
		return fmt.Errorf("%w: %s at size %d does not extend size %d: %v", ErrBadProof, older.Origin, newer.Size, older.Size, err)
	}
	return nil
}

// Audit checks that entries, all of them from the first, hash to the root
// of cp: the whole log, not one entry, is what cp signed. It fails with
// ErrTooLarge for an entry no log accepts and ErrBadProof otherwise.
func Audit(entries [][]byte, cp Checkpoint) error {
	if int64(len(entries)) != cp.Size {
		return fmt.Errorf("%w: %d entries, checkpoint of %s has %d", ErrBadProof, len(entries), cp.Origin, cp.Size)
	}
	var hashes memHashes
	for i, e := range entries {
		if len(e) > MaxEntry {
			return fmt.Errorf("%w: entry %d has %d bytes, limit %d", ErrTooLarge, i, len(e), MaxEntry)
		}
		h, err := tlog.StoredHashes(int64(i), e, hashes)
		if err != nil {
			return err
		}
		hashes = append(hashes, h...)
	}
	root, err := tlog.TreeHash(cp.Size, hashes)
	if err != nil {
		return err
	}
	if root != cp.Hash {
		return fmt.Errorf("%w: %d entries hash to %v, checkpoint of %s says %v", ErrBadProof, len(entries), root, cp.Origin, cp.Hash)
	}
	return nil
}

// memHashes is a tlog.HashReader over stored hashes held in memory, in
// storage order.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m)) {
			return nil, fmt.Errorf("ledger: hash %d of %d", x, len(m))
		}
		out[i] = m[x]
	}
	return out, nil
}

// ZoneOrigin names the log of zone kept by the relay with key: DDT's
// "ddt.zone/<zone>/<first 8 hex digits of the key>", so a new relay key
// starts a new log.
func ZoneOrigin(zone string, key [32]byte) string {
	return "ddt.zone/" + zone + "/" + hex.EncodeToString(key[:4])
}
