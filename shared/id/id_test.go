package id

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseRoundTrip(t *testing.T) {
	a := Derive([]byte("key"), []byte("nonce"))
	b, err := Parse(a.String())
	if err != nil || a != b {
		t.Fatalf("Parse(%s) = %s, %v", a, b, err)
	}
	if len(a.String()) != 40 {
		t.Fatalf("text form has %d characters", len(a.String()))
	}
	up, err := Parse("ABCDEF0123456789ABCDEF0123456789ABCDEF01")
	if err != nil || up.String() != "abcdef0123456789abcdef0123456789abcdef01" {
		t.Fatalf("upper case: %s %v", up, err)
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{"", "00", "zz23456789abcdef0123456789abcdef01234567", "0123456789abcdef0123456789abcdef012345678"} {
		if _, err := Parse(s); !errors.Is(err, ErrBadAddress) {
			t.Errorf("Parse(%q) error = %v, want ErrBadAddress", s, err)
		}
	}
}

func TestDeriveDependsOnNonce(t *testing.T) {
	if Derive([]byte("k"), []byte{1}) == Derive([]byte("k"), []byte{2}) {
		t.Fatal("different nonces gave the same address")
	}
}

func TestDistance(t *testing.T) {
	var zero, one, two, top Address
	one[Len-1] = 1
	two[Len-1] = 2
	top[0] = 0x80
	if !Closer(zero, one, two) || Closer(zero, two, one) {
		t.Fatal("1 should be closer to 0 than 2")
	}
	if Closer(zero, one, one) {
		t.Fatal("an address is not strictly closer than itself")
	}
	if got := CommonPrefixLen(zero, top); got != 0 {
		t.Fatalf("CommonPrefixLen(0, top) = %d", got)
	}
	if got := CommonPrefixLen(zero, one); got != 159 {
		t.Fatalf("CommonPrefixLen(0, 1) = %d", got)
	}
	if got := CommonPrefixLen(one, one); got != 160 {
		t.Fatalf("CommonPrefixLen(1, 1) = %d", got)
	}
	if one.Xor(two).Xor(two) != one {
		t.Fatal("xor is not its own inverse")
	}
}

func ExampleDerive() {
	a := Derive([]byte("an Ed25519 public key"), []byte("the relay's nonce"))
	fmt.Println(len(a.String()), a.Short() == a.String()[:8])
	// Output: 40 true
}
