package username

import (
	"encoding/hex"
	"strconv"

	"ddt/shared/ledger"
	"ddt/shared/wire"
)

// View is a verified username record as window.ddt and the native node's
// HTTP endpoints show it (JSON field names are the page's).
type View struct {
	Name     string     `json:"name"`
	Address  string     `json:"address"`  // 40 hex digits, as ddt.address
	Zone     string     `json:"zone"`     // the claimant's zone
	SignKey  string     `json:"signKey"`  // hex
	AgreeKey string     `json:"agreeKey"` // hex
	Version  uint64     `json:"version"`
	Ledger   LedgerView `json:"ledger"`
	Seq      string     `json:"seq"` // "<ledger zone>:<index>"
}

// LedgerView says where a record was sequenced: entry Index of the zone
// ledger of Zone, kept by the relay with RelayKey, proven against a
// checkpoint of Size entries.
type LedgerView struct {
	Zone     string `json:"zone"`
	Index    uint64 `json:"index"`
	RelayKey string `json:"relayKey"` // hex
	Size     int64  `json:"size"`
}

// ViewOf describes rec, which Register or Resolve verified.
func ViewOf(rec *wire.UserRecord) View {
	c := &rec.Claim
	v := View{
		Name:     c.Name,
		Address:  c.Address.String(),
		Zone:     c.Zone,
		SignKey:  hex.EncodeToString(c.SignKey[:]),
		AgreeKey: hex.EncodeToString(c.AgreeKey[:]),
		Version:  c.Version,
		Ledger:   LedgerView{Zone: rec.Zone, Index: rec.Index, RelayKey: hex.EncodeToString(rec.RelayKey[:])},
		Seq:      rec.Zone + ":" + strconv.FormatUint(rec.Index, 10),
	}
	if cp, err := ledger.OpenCheckpoint(rec.Checkpoint, ledger.ZoneOrigin(rec.Zone, rec.RelayKey), rec.RelayKey[:]); err == nil {
		v.Ledger.Size = cp.Size
	}
	return v
}
