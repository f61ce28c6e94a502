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

	"ddt/shared/ledger"
)

// runAudit is "ddt-relay audit": it checks a relay's ledger, or its
// mirror of a federated zone's ledger, from the outside.
func runAudit(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	relay := fs.String("relay", "", "base URL of the relay to audit (required)")
	zone := fs.String("zone", "", "zone whose ledger to audit: a federated zone the relay mirrors (default: the relay's own)")
	key := fs.String("key", "", "hex key of the relay that signs the zone's ledger (default: as the relay's /relays lists it)")
	timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *relay == "" {
		return errors.New("-relay is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := auditLedger(ctx, http.DefaultClient, *relay, *zone, *key)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, res)
	return nil
}

// auditLedger fetches the checkpoint and every entry of zone's ledger
// from the relay at base, checks the checkpoint's signature by the
// zone's relay key and that the entries make its tree, and returns the
// "ok: …" line.
func auditLedger(ctx context.Context, c *http.Client, base, zone, keyHex string) (string, error) {
	base = strings.TrimSuffix(base, "/")
	var relays []RelayJSON
	if err := getJSONCtx(ctx, c, base+"/relays", &relays); err != nil {
		return "", err
	}
	if len(relays) == 0 || !relays[0].Self {
		return "", errors.New("the relay's /relays does not list itself first")
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
			return "", fmt.Errorf("the relay lists no relay of zone %q; give its key with -key", zone)
		}
	}
	kb, err := hex.DecodeString(keyHex)
	if err != nil || len(kb) != ed25519.PublicKeySize {
		return "", fmt.Errorf("relay key %q is not %d hex bytes", keyHex, ed25519.PublicKeySize)
	}
	prefix := base + "/ledger/zone/" + url.PathEscape(zone)
	if own {
		prefix = base + "/ledger"
	}
	note, err := getBody(ctx, c, prefix+"/checkpoint")
	if err != nil {
		return "", err
	}
	cp, err := ledger.OpenCheckpoint(note, ledger.ZoneOrigin(zone, [32]byte(kb)), ed25519.PublicKey(kb))
	if err != nil {
		return "", fmt.Errorf("checkpoint of zone %s: %w", zone, err)
	}
	entries := make([][]byte, 0, min(cp.Size, 1<<16))
	for int64(len(entries)) < cp.Size {
		var page EntriesJSON
		if err := getJSONCtx(ctx, c, fmt.Sprintf("%s/entries?from=%d&to=%d", prefix, len(entries), cp.Size), &page); err != nil {
			return "", err
		}
		if page.From != int64(len(entries)) || len(page.Entries) == 0 {
			return "", fmt.Errorf("entries from %d: the relay sent %d from %d", len(entries), len(page.Entries), page.From)
		}
		entries = append(entries, page.Entries...)
	}
	if int64(len(entries)) != cp.Size {
		return "", fmt.Errorf("%d entries for a checkpoint of %d", len(entries), cp.Size)
	}
	if err := ledger.Audit(entries, cp); err != nil {
		return "", fmt.Errorf("zone %s: %w", zone, err)
	}
	return fmt.Sprintf("ok: zone %s, %d entries, root %s", zone, cp.Size, base64.StdEncoding.EncodeToString(cp.Hash[:])), nil
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
