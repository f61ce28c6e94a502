package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"ddt/relay/federation"
	"ddt/relay/zoneledger"
	"ddt/shared/ledger"
	"ddt/shared/names"
)

// runAudit is "ddt-relay audit": it checks a relay's ledger, or its
// mirror of a federated zone's ledger, from the outside.
func runAudit(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	relay := fs.String("relay", "", "base URL of the relay to audit (required)")
	zone := fs.String("zone", "", "zone whose ledger to audit: a federated zone the relay mirrors (default: the relay's own)")
	key := fs.String("key", "", "hex key of the relay that signs the zone's ledger (default: as the relay's /relays lists it)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	namesLine := fs.Bool("names", false, "also print a summary of the username entries: names, updates, and claims of a name another key held first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *relay == "" {
		return errors.New("-relay is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := audit(ctx, http.DefaultClient, *relay, *zone, *key)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, res.String())
	if *namesLine {
		fmt.Fprintln(out, res.names.String())
	}
	return nil
}

// auditResult is what an audit found.
type auditResult struct {
	zone  string
	cp    ledger.Checkpoint
	names nameAudit
}

// String is the "ok: …" line.
func (r *auditResult) String() string {
	return fmt.Sprintf("ok: zone %s, %d entries, root %s, %d username %s", r.zone, r.cp.Size,
		base64.StdEncoding.EncodeToString(r.cp.Hash[:]), r.names.entries, plural(int(r.names.entries), "entry", "entries"))
}

// nameAudit counts a ledger's username entries.
type nameAudit struct {
	entries   int64 // username entries
	names     int64 // distinct names (by hash)
	updates   int64 // later entries of a name by the key that holds it
	conflicts int64 // entries of a name another key held first in this ledger
}

// String is the -names line.
func (a *nameAudit) String() string {
	return fmt.Sprintf("names: %d username %s: %d %s, %d %s, %d %s of a name another key held first", a.entries, plural(int(a.entries), "entry", "entries"),
		a.names, plural(int(a.names), "name", "names"), a.updates, plural(int(a.updates), "update", "updates"),
		a.conflicts, plural(int(a.conflicts), "claim", "claims"))
}

// auditNames checks and counts the username entries of a ledger: an entry
// marked as a username entry that does not parse is an error. Claims of a
// name another key held first are counted, not refused: a ledger can hold
// them when the federation changed while two relays were each the name's
// home (see names.Before).
func auditNames(entries [][]byte) (nameAudit, error) {
	var a nameAudit
	first := map[[32]byte][32]byte{} // name hash → owner of its first entry
	for i, b := range entries {
		e, err := names.ParseEntry(b)
		if errors.Is(err, names.ErrNotUser) {
			continue
		}
		if err != nil {
			return a, fmt.Errorf("entry %d: %w", i, err)
		}
		a.entries++
		owner, seen := first[e.Hash]
		switch {
		case !seen:
			first[e.Hash] = e.Owner
			a.names++
		case owner == e.Owner:
			a.updates++
		default:
			a.conflicts++
		}
	}
	return a, nil
}

// auditLedger is audit's "ok: …" line.
func auditLedger(ctx context.Context, c *http.Client, base, zone, keyHex string) (string, error) {
	res, err := audit(ctx, c, base, zone, keyHex)
	if err != nil {
		return "", err
	}
	return res.String(), nil
}

// audit fetches the checkpoint and every entry of zone's ledger from the
// relay at base, checks the checkpoint's signature by the zone's relay
// key, that the entries make its tree, and that every username entry
// parses, and counts them.
func audit(ctx context.Context, c *http.Client, base, zone, keyHex string) (*auditResult, error) {
	base = strings.TrimSuffix(base, "/")
	var relays []federation.RelayJSON
	if err := getJSONCtx(ctx, c, base+"/relays", &relays); err != nil {
		return nil, err
	}
	if len(relays) == 0 || !relays[0].Self {
		return nil, errors.New("the relay's /relays does not list itself first")
	}
	own := zone == "" || zone == relays[0].Zone
	if zone == "" {
		zone = relays[0].Zone
	}
	if keyHex == "" {
		for _, r := range relays {
			if r.Zone == zone && r.Key != "" {
				keyHex = r.Key
				break
			}
		}
		if keyHex == "" {
			return nil, fmt.Errorf("the relay lists no relay of zone %q; give its key with -key", zone)
		}
	}
	kb, err := hex.DecodeString(keyHex)
	if err != nil || len(kb) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("relay key %q is not %d hex bytes", keyHex, ed25519.PublicKeySize)
	}
	prefix := base + "/ledger/zone/" + url.PathEscape(zone)
	if own {
		prefix = base + "/ledger"
	}
	note, err := getBody(ctx, c, prefix+"/checkpoint")
	if err != nil {
		return nil, err
	}
	cp, err := ledger.OpenCheckpoint(note, ledger.ZoneOrigin(zone, [32]byte(kb)), ed25519.PublicKey(kb))
	if err != nil {
		return nil, fmt.Errorf("checkpoint of zone %s: %w", zone, err)
	}
	entries := make([][]byte, 0, min(cp.Size, 1<<16))
	for int64(len(entries)) < cp.Size {
		var page zoneledger.EntriesJSON
		if err := getJSONCtx(ctx, c, fmt.Sprintf("%s/entries?from=%d&to=%d", prefix, len(entries), cp.Size), &page); err != nil {
			return nil, err
		}
		if page.From != int64(len(entries)) || len(page.Entries) == 0 {
			return nil, fmt.Errorf("entries from %d: the relay sent %d from %d", len(entries), len(page.Entries), page.From)
		}
		entries = append(entries, page.Entries...)
	}
	if int64(len(entries)) != cp.Size {
		return nil, fmt.Errorf("%d entries for a checkpoint of %d", len(entries), cp.Size)
	}
	if err := ledger.Audit(entries, cp); err != nil {
		return nil, fmt.Errorf("zone %s: %w", zone, err)
	}
	na, err := auditNames(entries)
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", zone, err)
	}
	return &auditResult{zone: zone, cp: cp, names: na}, nil
}

func getBody(ctx context.Context, c *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

func getJSONCtx(ctx context.Context, c *http.Client, u string, v any) error {
	b, err := getBody(ctx, c, u)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}
