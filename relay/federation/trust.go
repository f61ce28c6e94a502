package federation

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"ddt/shared/store"
)

// storePinPrefix keys, by -peer URL, the relay key pinned at first contact.
const storePinPrefix = "federation/pin/"

// ParseKey reads a relay key: 64 hex digits, as `ddt-relay key` prints it.
func ParseKey(s string) ([32]byte, error) {
	var k [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("%q is not a relay key: want 64 hex digits, as `ddt-relay key` prints", s)
	}
	copy(k[:], b)
	if k == ([32]byte{}) {
		return k, fmt.Errorf("%q is not a relay key: it is all zeros", s)
	}
	return k, nil
}

// ParsePeer reads a -peer flag: a base URL, then optionally # and the
// relay's key in hex. Without a key the relay's key is pinned at first
// contact.
func ParsePeer(s string) (Peer, error) {
	u, k, hasKey := strings.Cut(s, "#")
	u = strings.TrimSuffix(strings.TrimSpace(u), "/")
	if u == "" {
		return Peer{}, fmt.Errorf("-peer %q names no URL", s)
	}
	p := Peer{URL: u}
	if hasKey {
		var err error
		if p.Key, err = ParseKey(k); err != nil {
			return Peer{}, fmt.Errorf("-peer %q: %w", s, err)
		}
	}
	return p, nil
}

// ParseTrust reads a trust file: one relay a line, its key in hex and
// optionally its base URL (`KEYHEX [URL]`); `#` starts a comment. A
// relay with a URL is dialed as a -peer is; one without is trusted when
// it links.
func ParseTrust(r io.Reader) (peers []Peer, trusted [][32]byte, err error) {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) > 2 {
			return nil, nil, fmt.Errorf("line %d: want `KEYHEX [URL]`, got %d fields", n, len(fields))
		}
		k, err := ParseKey(fields[0])
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", n, err)
		}
		if len(fields) == 1 {
			trusted = append(trusted, k)
			continue
		}
		peers = append(peers, Peer{URL: strings.TrimSuffix(fields[1], "/"), Key: k})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	return peers, trusted, nil
}

// loadPin returns the key pinned for the -peer at url, if any.
func (f *Federation) loadPin(url string) ([32]byte, bool, error) {
	var k [32]byte
	if f.cfg.Store == nil {
		return k, false, nil
	}
	b, err := f.cfg.Store.Get(storePinPrefix + strings.TrimSuffix(url, "/"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return k, false, nil
	case err != nil:
		return k, false, fmt.Errorf("federation: the key pinned for %s: %w", url, err)
	case len(b) != len(k):
		return k, false, fmt.Errorf("federation: the key pinned for %s is %d bytes, not %d", url, len(b), len(k))
	}
	copy(k[:], b)
	return k, true, nil
}

// pin trusts key as the -peer d's for good: d dials only that key from
// now on, across restarts.
func (f *Federation) pin(d *dialTarget, key [32]byte) {
	f.mu.Lock()
	first := !d.known
	if first {
		d.key, d.known = key, true
		if _, ok := f.trust[key]; !ok {
			f.trust[key] = "pinned"
		}
	}
	f.mu.Unlock()
	if !first {
		return
	}
	kept := "kept in the relay's store"
	if f.cfg.Store == nil {
		kept = "in memory only"
	} else if err := f.cfg.Store.Put(storePinPrefix+strings.TrimSuffix(d.url, "/"), key[:]); err != nil {
		kept = "not kept: " + err.Error()
	}
	f.log.Warn("pinned the key this -peer proved at first contact; name it explicitly to be safe from whoever answered first",
		"peer", d.url, "key", fmt.Sprintf("%x", key), "pin", kept, "flag", fmt.Sprintf("-peer %s#%x", d.url, key))
}
