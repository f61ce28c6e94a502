package wire

import (
	"fmt"
	"slices"
)

// Features is what the sender of a hello has: the capabilities and link
// services whose messages it understands. Browser tabs run cached wasm,
// so peers and relays of several versions meet; a node, relay or link
// sends a capability's messages only to a side whose hello listed that
// capability, and skips (and counts) frames of types it does not know.
//
// A feature is 1 to MaxFeature bytes of a–z, 0–9 and '-'; a hello lists
// at most MaxFeatures of them. Features are not signed: a feature falsely
// claimed only earns its claimant messages it will skip.
//
// Layout: count | string*
type Features []string

// Feature limits.
const (
	MaxFeatures = 32
	MaxFeature  = 32
)

// FeatureBulk: the peer link has a bulk channel beside its control one
// (large transfers go there and never delay keepalives or lookups).
const FeatureBulk = "bulk"

// NewFeatures returns the features in names, sorted, without duplicates.
func NewFeatures(names ...string) Features {
	f := slices.Clone(names)
	slices.Sort(f)
	return slices.Compact(f)
}

// Has reports whether f lists name.
func (f Features) Has(name string) bool { return slices.Contains(f, name) }

func (f Features) encode(e *encoder) {
	e.count(len(f), MaxFeatures, "features")
	for _, s := range f {
		if !validFeature(s) && e.err == nil {
			e.err = fmt.Errorf("%w: feature %q: only a–z, 0–9 and '-'", ErrMalformed, s)
		}
		e.string(s, MaxFeature, "feature")
	}
}

func decodeFeatures(d *decoder) Features {
	n := d.count(MaxFeatures, 2, "features")
	if n == 0 || d.err != nil {
		return nil
	}
	f := make(Features, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		s := d.string(MaxFeature, "feature")
		if d.err == nil && !validFeature(s) {
			d.fail("feature %q: only a–z, 0–9 and '-'", s)
		}
		f = append(f, s)
	}
	return f
}

// ValidFeature reports whether s may name a feature.
func ValidFeature(s string) bool { return validFeature(s) }

func validFeature(s string) bool {
	if s == "" || len(s) > MaxFeature {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
