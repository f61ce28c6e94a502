package ledger

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzOpenCheckpoint feeds OpenCheckpoint mutations of real checkpoints
// (signed, cosigned, with an extension line, of the empty tree). Whatever
// it accepts must say what its note text says, and that text must be the
// canonical one unless it carries extension lines.
func FuzzOpenCheckpoint(f *testing.F) {
	g := grow(f, "fuzz", 5)
	key, _ := testKey("fuzz")
	for _, s := range g.signed {
		f.Add(s)
	}
	f.Add(signAs(f, g.cps[5].String()+"ext\n", g.origin, key))
	f.Add(append(bytes.Clone(g.signed[5]), signAs(f, g.cps[5].String(), "cosigner", mustKey("cosigner"))[len(g.cps[5].String())+1:]...))
	f.Add([]byte(g.cps[5].String()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, msg []byte) {
		cp, err := OpenCheckpoint(msg, g.origin, g.pub)
		if err != nil {
			for _, known := range []error{ErrTooLarge, ErrBadSignature, ErrWrongOrigin, ErrMalformed} {
				if errors.Is(err, known) {
					return
				}
			}
			t.Fatalf("error without a sentinel: %v", err)
		}
		text, _, _ := bytes.Cut(msg, []byte("\n\n"))
		again, err := parseCheckpoint(string(text) + "\n")
		if err != nil || again != cp {
			t.Fatalf("accepted %+v, its text parses to %+v, %v", cp, again, err)
		}
		if strings.Count(string(text), "\n") == 2 && string(text)+"\n" != cp.String() {
			t.Fatalf("accepted non-canonical text %q", text)
		}
	})
}

// FuzzParseCheckpoint checks that checkpoint texts without extension
// lines round-trip exactly.
func FuzzParseCheckpoint(f *testing.F) {
	g := grow(f, "fuzz", 2)
	for _, cp := range g.cps {
		f.Add(cp.String())
	}
	f.Add(g.cps[2].String() + "ext\n")
	f.Add("o\n01\nAAAA\n")
	f.Fuzz(func(t *testing.T, text string) {
		cp, err := parseCheckpoint(text)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error without ErrMalformed: %v", err)
			}
			return
		}
		if strings.Count(text, "\n") == 3 && cp.String() != text {
			t.Fatalf("%q parses to %+v, which formats as %q", text, cp, cp.String())
		}
		if again, err := parseCheckpoint(cp.String()); err != nil || again != cp {
			t.Fatalf("%+v does not round-trip: %+v, %v", cp, again, err)
		}
	})
}

// FuzzParseBundle checks that entry bundles round-trip exactly.
func FuzzParseBundle(f *testing.F) {
	var b []byte
	for i := range bundleSize {
		b = appendEntry(b, entry("fuzz", i))
		f.Add(bytes.Clone(b))
	}
	f.Add([]byte{0})
	f.Add([]byte{0x10, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := parseBundle(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error without ErrMalformed: %v", err)
			}
			return
		}
		var again []byte
		for _, e := range es {
			again = appendEntry(again, e)
		}
		if !bytes.Equal(again, b) || len(es) > bundleSize {
			t.Fatalf("%d entries from %x re-encode as %x", len(es), b, again)
		}
	})
}
