// Package relaytest plays nodes and relays by hand against the relay's
// engines over in-memory pipes, for their tests: an End is the test's
// side of a transport.Pipe whose other side an engine serves. It knows
// the wire protocol only (no engine), so every engine's tests can use it.
package relaytest
