// Package sim runs thousands of DHT nodes in one process on a virtual
// clock, to measure how package dht behaves at scale and under churn.
//
// A Sim owns a clock.Virtual (virtual time, shared by every node), a Network
// (which carries each dht.Network Call straight to the callee's Handle, on
// the caller's goroutine, and fails a call to a departed node at once, as
// if it had timed out) and the nodes. It joins nodes the way a DDT relay
// admits them: each newcomer is handed the 8 existing nodes closest to its
// address and 8 random ones, then runs dht.Bootstrap (a lookup of itself
// and a refresh of its buckets).
//
// Churn is explicit: Leave takes nodes away without a word, Return brings
// departed ones back (with their address if they were away less than the
// lease period of 7 days, otherwise with a new one, as a relay's lease
// lapses), Join adds new nodes, and Advance moves the clock and runs
// Maintain on every live node. Measure looks up random live nodes from
// random live nodes, reads back the records that live owners published,
// checks the routing tables against the true set of live nodes, and
// returns a Report.
package sim
