package dht

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"reflect"
	"strings"
	"testing"

	"ddt/shared/id"
	"ddt/shared/wire"
)

func userKey(name string) id.Address {
	sum := sha256.Sum256([]byte("user/" + name))
	return id.Address(sum[:id.Len])
}

func TestRecordRoundTrip(t *testing.T) {
	r := signed(t, newKey(t, 1), userKey("alice"), 7, "address and keys")
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != recordOverhead+len(r.Value) {
		t.Fatalf("encoded %d bytes", len(b))
	}
	var got Record
	if err := got.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// Every proper prefix and any extra byte fail.
	for i := range b {
		if err := new(Record).Unmarshal(b[:i]); err == nil {
			t.Fatalf("a %d-byte prefix decoded", i)
		}
	}
	if err := new(Record).Unmarshal(append(b, 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
}

func TestRecordVerifyRefuses(t *testing.T) {
	priv := newKey(t, 1)
	good := signed(t, priv, userKey("alice"), 1, "v")
	cases := map[string]struct {
		edit func(r *Record)
		want error
	}{
		"changed value":    {func(r *Record) { r.Value = []byte("w") }, ErrBadSignature},
		"changed seq":      {func(r *Record) { r.Seq++ }, ErrBadSignature},
		"changed key":      {func(r *Record) { r.Key = userKey("mallory") }, ErrBadSignature},
		"another signer":   {func(r *Record) { r.Signer = signed(t, newKey(t, 2), r.Key, 1, "v").Signer }, ErrBadSignature},
		"forged signature": {func(r *Record) { r.Sig[10] ^= 1 }, ErrBadSignature},
		"no signature":     {func(r *Record) { r.Sig = [64]byte{} }, ErrUnsigned},
		"no signer":        {func(r *Record) { r.Signer = [32]byte{} }, ErrUnsigned},
		"oversized value":  {func(r *Record) { r.Value = make([]byte, MaxValue+1) }, ErrTooLarge},
	}
	for name, c := range cases {
		r := good
		r.Value = bytes.Clone(good.Value)
		c.edit(&r)
		if err := r.Verify(); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, c.want)
		}
	}
	// The errors map to wire codes.
	if wire.CodeOf(ErrBadSignature) != wire.CodeBadSignature || wire.CodeOf(ErrUnsigned) != wire.CodeBadSignature ||
		wire.CodeOf(ErrTooLarge) != wire.CodeTooLarge || wire.CodeOf(ErrStale) != wire.CodeStale ||
		wire.CodeOf(ErrTooManySigners) != wire.CodeFull || wire.CodeOf(ErrFull) != wire.CodeFull ||
		wire.CodeOf(ErrMalformed) != wire.CodeMalformed || wire.CodeOf(ErrUnexpected) != wire.CodeProtocol {
		t.Error("a dht error maps to the wrong wire code")
	}
}

func TestRecordLimits(t *testing.T) {
	priv := newKey(t, 1)
	r := Record{Key: userKey("big"), Value: make([]byte, MaxValue)}
	if err := r.Sign(priv); err != nil {
		t.Fatalf("signing a value of MaxValue: %v", err)
	}
	b, err := r.Marshal()
	if err != nil || len(b) != MaxRecord || len(b) > wire.MaxRecord {
		t.Fatalf("largest record: %d bytes, %v", len(b), err)
	}
	r.Value = append(r.Value, 0)
	if err := r.Sign(priv); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("signing an oversized value: %v", err)
	}
	if _, err := r.Marshal(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("marshalling an oversized value: %v", err)
	}
	if err := new(Record).Unmarshal(make([]byte, MaxRecord+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("decoding an oversized record: %v", err)
	}
	// A length field over MaxValue is refused even in a frame of the right size.
	b[id.Len+32+8], b[id.Len+32+9] = 0xff, 0xff
	if err := new(Record).Unmarshal(b); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("value length over MaxValue: %v", err)
	}
	if err := (&Record{}).Sign(priv[:10]); err == nil {
		t.Fatal("signing with a short key worked")
	}
}

func FuzzRecord(f *testing.F) {
	priv := ed25519Key(1)
	for _, v := range []string{"", "v", strings.Repeat("x", MaxValue)} {
		r := Record{Key: userKey(v), Seq: uint64(len(v)), Value: []byte(v)}
		_ = r.Sign(priv)
		b, _ := r.Marshal()
		f.Add(b)
	}
	f.Add(make([]byte, recordOverhead))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if err := r.Unmarshal(b); err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// The encoding is canonical: what decodes re-encodes to the same bytes.
		again, err := r.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %v", err)
		}
		_ = r.Verify() // must not panic
	})
}
