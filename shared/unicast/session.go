package unicast

import (
	"context"
	"encoding/hex"
	"time"

	"ddt/shared/node"
	"ddt/shared/unicast/ratchet"
)

// MaxSessions bounds the sessions kept per friend (older ones still open
// messages sealed before a newer one was made); the oldest goes first.
const MaxSessions = 4

// session is one ratchet session with a friend ("sessions/<name>/<hex
// id>"; State is the ratchet's Marshal).
type session struct {
	ID        [16]byte
	Name      string
	Initiator bool
	Created   int64
	// Ready: both sides have it (the initiator opened the confirmation;
	// the receiver opened a message of the initiator's).
	Ready bool
	State []byte

	st *ratchet.State
}

func keySession(name string, sid [16]byte) string {
	return "sessions/" + name + "/" + hex.EncodeToString(sid[:])
}

// saveSessionLocked persists x with its ratchet state; it must succeed
// before what the state sealed is sent or what it opened acknowledged.
func (s *Service) saveSessionLocked(x *session) error {
	x.State = x.st.Marshal()
	if s.sessions[x.ID] != x {
		// x was dropped meanwhile (an old reference: a flush's, a Send's):
		// writing it would bring it back at the next load.
		return nil
	}
	if err := putRecord(s.h.Store(), keySession(x.Name, x.ID), x); err != nil {
		s.h.Logger().Warn("could not save a session", "name", x.Name, "err", err)
		return node.Errorf(node.CodeError, []error{err}, "could not save the session with %q: %v", x.Name, err)
	}
	return nil
}

// addSessionLocked keeps x, dropping the friend's oldest sessions past
// MaxSessions.
func (s *Service) addSessionLocked(x *session) error {
	s.sessions[x.ID] = x
	if err := s.saveSessionLocked(x); err != nil {
		delete(s.sessions, x.ID)
		return err
	}
	var mine []*session
	for _, y := range s.sessions {
		if y.Name == x.Name {
			mine = append(mine, y)
		}
	}
	for len(mine) > MaxSessions {
		old := 0
		for i, y := range mine {
			if y.Created < mine[old].Created {
				old = i
			}
		}
		s.dropSessionLocked(mine[old])
		mine = append(mine[:old], mine[old+1:]...)
	}
	return nil
}

func (s *Service) dropSessionLocked(x *session) {
	delete(s.sessions, x.ID)
	if err := s.h.Store().Delete(keySession(x.Name, x.ID)); err != nil {
		s.h.Logger().Warn("could not delete a session", "name", x.Name, "err", err)
	}
	if f := s.friends[x.Name]; f != nil && f.Current == x.ID {
		f.Current = [16]byte{}
		s.saveFriendLocked(f)
	}
}

func (s *Service) loadSessions() {
	s.loadRecords("sessions/", "sessions", func() record { return new(session) }, func(k string, r record) error {
		x := r.(*session)
		if keySession(x.Name, x.ID) != k {
			return errMisplaced
		}
		st, err := ratchet.Unmarshal(x.State)
		if err != nil {
			return err
		}
		x.st = st
		s.sessions[x.ID] = x
		return nil
	})
}

// ad is the associated data of a message of the session sid from the
// identity key from to the identity key to.
func ad(sid [16]byte, from, to [32]byte) []byte {
	b := make([]byte, 0, 80)
	b = append(b, sid[:]...)
	b = append(b, from[:]...)
	return append(b, to[:]...)
}

// currentLocked is the ready, unexpired session our messages to f are
// sealed with, or nil.
func (s *Service) currentLocked(f *friend, now time.Time) *session {
	x := s.sessions[f.Current]
	if x == nil || !x.Ready || !x.st.CanSeal() || now.Sub(time.UnixMilli(x.Created)) > SessionMaxAge {
		return nil
	}
	return x
}

// sessionStateLocked is the session state FriendView shows.
func (s *Service) sessionStateLocked(f *friend, now time.Time) string {
	if s.currentLocked(f, now) != nil {
		return "ready"
	}
	for _, x := range s.exchanges {
		if x.name == f.Name {
			return "connecting"
		}
	}
	for _, in := range s.incoming {
		if in.name == f.Name {
			return "connecting"
		}
	}
	for _, x := range s.sessions {
		if x.Name == f.Name && !x.Ready {
			return "connecting"
		}
	}
	return "none"
}

// notifyLocked wakes everyone waiting for a session to change.
func (s *Service) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// readySession returns the friend's current session, starting a key
// exchange if there is none, and waiting for it while ctx lasts.
func (s *Service) readySession(ctx context.Context, name string) (*session, error) {
	for {
		now := s.h.Clock().Now()
		s.mu.Lock()
		f := s.friends[name]
		if f == nil || f.State != stateFriend {
			s.mu.Unlock()
			return nil, node.Errorf(CodeNotFriend, nil, "%q is not a friend", name)
		}
		if x := s.currentLocked(f, now); x != nil {
			s.mu.Unlock()
			return x, nil
		}
		// The acceptor starts the exchange; the requester waits for it a
		// while before starting one itself.
		waitPeer := f.AcceptedAt != 0 && now.Sub(time.UnixMilli(f.AcceptedAt)) < peerExchangeWait
		busy := s.sessionStateLocked(f, now) == "connecting"
		ch := s.changed
		s.mu.Unlock()
		if !waitPeer && !busy {
			s.startExchange(name)
		}
		var tick <-chan time.Time
		if waitPeer {
			t := s.h.Clock().NewTimer(peerExchangeWait)
			defer t.Stop()
			tick = t.C()
		}
		select {
		case <-ch:
		case <-tick:
		case <-ctx.Done():
			return nil, node.Errorf(CodeNoSession, []error{ctx.Err()}, "no session with %q yet: the key exchange has not completed", name)
		}
	}
}

// sessionReadyLocked makes x the friend's current session and tells so.
func (s *Service) sessionReadyLocked(x *session) {
	x.Ready = true
	s.saveSessionLocked(x)
	if f := s.friends[x.Name]; f != nil {
		if cur := s.sessions[f.Current]; cur == nil || !cur.Ready || cur.Created <= x.Created {
			f.Current = x.ID
			f.AcceptedAt = 0
			s.saveFriendLocked(f)
		}
	}
	s.notifyLocked()
}
