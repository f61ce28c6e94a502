package zoneledger

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"ddt/shared/ledger"
)

// view is what the HTTP endpoints serve: a ledger.Log or a ledger.Mirror.
type view interface {
	Checkpoint() ([]byte, ledger.Checkpoint)
	Entries(from, to int64) ([][]byte, error)
	InclusionProof(index, size int64) (tlog.RecordProof, error)
	ConsistencyProof(oldSize, newSize int64) (tlog.TreeProof, error)
}

var (
	_ view = (*ledger.Log)(nil)
	_ view = (*ledger.Mirror)(nil)
)

// EntriesJSON is the reply of /ledger/entries: entries from From on
// (base64 in JSON), at most ledger.MaxBatch; ask again from where they end.
type EntriesJSON struct {
	From    int64    `json:"from"`
	Size    int64    `json:"size"` // the ledger's size when asked
	Entries [][]byte `json:"entries"`
}

// InclusionJSON is the reply of /ledger/proof/inclusion.
type InclusionJSON struct {
	Index  int64    `json:"index"`
	Size   int64    `json:"size"`
	Hashes [][]byte `json:"hashes"`
}

// ConsistencyJSON is the reply of /ledger/proof/consistency.
type ConsistencyJSON struct {
	Old    int64    `json:"old"`
	New    int64    `json:"new"`
	Hashes [][]byte `json:"hashes"`
}

func hashesJSON(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = hs[i][:]
	}
	return out
}

// open marks a reply readable from any origin and never cached.
func open(w http.ResponseWriter) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "no-store")
}

func reply(w http.ResponseWriter, v any) {
	open(w)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, msg string) {
	open(w)
	http.Error(w, msg, code)
}

// Routes adds the ledger endpoints to mux: /ledger/… for this zone's log
// and /ledger/zone/<zone>/… for it and the mirrors of federated zones'
// logs. Bad parameters get 400, a range or size beyond the log 404.
func (s *Service) Routes(mux *http.ServeMux) {
	// param reads a non-negative integer; def < 0 means it is required.
	param := func(w http.ResponseWriter, r *http.Request, name string, def int64) (int64, bool) {
		v := r.URL.Query().Get(name)
		if v == "" && def >= 0 {
			return def, true
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			fail(w, http.StatusBadRequest, "parameter "+name+" must be a non-negative integer")
			return 0, false
		}
		return n, true
	}
	notFound := func(w http.ResponseWriter, err error) {
		if errors.Is(err, ledger.ErrNotFound) {
			fail(w, http.StatusNotFound, err.Error())
		} else {
			s.log.Error("ledger", "err", err)
			fail(w, http.StatusInternalServerError, "ledger unavailable")
		}
	}
	handle := func(path string, serve func(http.ResponseWriter, *http.Request, view)) {
		mux.HandleFunc("GET /ledger/"+path, func(w http.ResponseWriter, r *http.Request) { serve(w, r, s.own) })
		mux.HandleFunc("GET /ledger/zone/{zone}/"+path, func(w http.ResponseWriter, r *http.Request) {
			zone := r.PathValue("zone")
			var v view
			if zone == s.cfg.Zone {
				v = s.own
			} else if m := s.Mirror(zone); m != nil {
				v = m
			} else {
				fail(w, http.StatusNotFound, "this relay mirrors no ledger of zone "+strconv.Quote(zone))
				return
			}
			serve(w, r, v)
		})
	}
	handle("checkpoint", func(w http.ResponseWriter, r *http.Request, v view) {
		note, _ := v.Checkpoint()
		if note == nil {
			fail(w, http.StatusNotFound, "no checkpoint of that ledger yet")
			return
		}
		open(w)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(note)
	})
	handle("entries", func(w http.ResponseWriter, r *http.Request, v view) {
		_, cp := v.Checkpoint()
		from, ok := param(w, r, "from", 0)
		if !ok {
			return
		}
		to, ok := param(w, r, "to", cp.Size)
		if !ok {
			return
		}
		if to < from {
			fail(w, http.StatusBadRequest, "to is before from")
			return
		}
		es, err := v.Entries(from, to)
		if err != nil {
			notFound(w, err)
			return
		}
		reply(w, EntriesJSON{From: from, Size: cp.Size, Entries: es})
	})
	handle("proof/inclusion", func(w http.ResponseWriter, r *http.Request, v view) {
		index, ok := param(w, r, "index", -1)
		if !ok {
			return
		}
		size, ok := param(w, r, "size", -1)
		if !ok {
			return
		}
		p, err := v.InclusionProof(index, size)
		if err != nil {
			notFound(w, err)
			return
		}
		reply(w, InclusionJSON{Index: index, Size: size, Hashes: hashesJSON(p)})
	})
	handle("proof/consistency", func(w http.ResponseWriter, r *http.Request, v view) {
		older, ok := param(w, r, "old", -1)
		if !ok {
			return
		}
		newer, ok := param(w, r, "new", -1)
		if !ok {
			return
		}
		if newer < older {
			fail(w, http.StatusBadRequest, "new is before old")
			return
		}
		p, err := v.ConsistencyProof(older, newer)
		if err != nil {
			notFound(w, err)
			return
		}
		reply(w, ConsistencyJSON{Old: older, New: newer, Hashes: hashesJSON(p)})
	})
}
