//go:build js && wasm

package bridge

import (
	"context"
	"errors"
	"syscall/js"
	"testing"
)

type coded struct{}

func (coded) Error() string     { return "no user named \"bob\"" }
func (coded) ErrorCode() string { return "not-found" }

func TestAwait(t *testing.T) {
	v, err := Await(js.Global().Get("Promise").Call("resolve", 42))
	if err != nil || v.Int() != 42 {
		t.Fatalf("resolved: %v %v", v, err)
	}
	_, err = Await(js.Global().Get("Promise").Call("reject", js.Global().Get("TypeError").New("bad")))
	var je *JSError
	if !errors.As(err, &je) || je.Name != "TypeError" || je.Message != "bad" {
		t.Fatalf("rejected: %#v", err)
	}
	if v, err := Await(js.ValueOf("plain")); err != nil || v.String() != "plain" {
		t.Fatalf("a non-promise: %v %v", v, err)
	}
}

func TestAwaitContext(t *testing.T) {
	executor := js.FuncOf(func(js.Value, []js.Value) any { return nil })
	defer executor.Release()
	never := js.Global().Get("Promise").New(executor)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := AwaitContext(ctx, never); !errors.Is(err, context.Canceled) {
		t.Fatalf("a promise that never settles, with a cancelled context: %v", err)
	}
	v, err := AwaitContext(context.Background(), js.Global().Get("Promise").Call("resolve", 7))
	if err != nil || v.Int() != 7 {
		t.Fatalf("resolved: %v %v", v, err)
	}
}

func TestPromiseRoundTrip(t *testing.T) {
	v, err := Await(Promise(func() (any, error) { return "ok", nil }))
	if err != nil || v.String() != "ok" {
		t.Fatalf("resolved: %v %v", v, err)
	}
	_, err = Await(Promise(func() (any, error) { return nil, coded{} }))
	var je *JSError
	if !errors.As(err, &je) || je.Message != `no user named "bob"` || je.Value.Get("code").String() != "not-found" {
		t.Fatalf("rejected: %v", err)
	}
	_, err = Await(Promise(func() (any, error) { panic("boom") }))
	if err == nil {
		t.Fatal("a panicking function resolved its promise")
	}
}

func TestCallCatches(t *testing.T) {
	_, err := Call(js.Global().Get("JSON"), "parse", "{")
	var je *JSError
	if !errors.As(err, &je) || je.Name != "SyntaxError" {
		t.Fatalf("JSON.parse of garbage: %v", err)
	}
	if _, err := New(js.Global().Get("URL"), "not a url"); err == nil {
		t.Fatal("new URL(garbage) did not fail")
	}
}

func TestValue(t *testing.T) {
	type view struct {
		Address string   `json:"address"`
		RTT     float64  `json:"rttMs"`
		Closest []string `json:"closest"`
	}
	v := MustValue(view{Address: "ab", RTT: 1.5, Closest: []string{"c"}})
	if v.Get("address").String() != "ab" || v.Get("rttMs").Float() != 1.5 || v.Get("closest").Index(0).String() != "c" {
		t.Fatalf("value: %s", Stringify(v))
	}
	var back view
	if err := Decode(v, &back); err != nil || back.Address != "ab" {
		t.Fatalf("decode: %+v %v", back, err)
	}
}

func TestDeferred(t *testing.T) {
	d := NewDeferred()
	d.Resolve("later")
	if v, err := Await(d.Promise); err != nil || v.String() != "later" {
		t.Fatalf("%v %v", v, err)
	}
	d = NewDeferred()
	d.Reject(errors.New("refused"))
	if _, err := Await(d.Promise); err == nil || err.Error() != "Error: refused" {
		t.Fatalf("rejection: %v", err)
	}
}

func TestValueShapes(t *testing.T) {
	type inner struct {
		N int `json:"n"`
	}
	type view struct {
		Skip    string            `json:"-"`
		Empty   string            `json:"empty,omitempty"`
		Kept    string            `json:"kept"`
		Inner   *inner            `json:"inner"`
		None    *inner            `json:"none"`
		Counts  map[string]int64  `json:"counts"`
		Flags   []bool            `json:"flags"`
		Missing []string          `json:"missing"`
		Any     any               `json:"any"`
		Nested  map[string]*inner `json:"nested"`
	}
	got := Stringify(MustValue(view{Skip: "x", Inner: &inner{3}, Counts: map[string]int64{"a": 1}, Flags: []bool{true}, Any: 2.5,
		Nested: map[string]*inner{"b": {4}}}))
	want := `{"kept":"","inner":{"n":3},"none":null,"counts":{"a":1},"flags":[true],"missing":null,"any":2.5,"nested":{"b":{"n":4}}}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if _, err := Value(map[int]string{1: "x"}); err == nil {
		t.Fatal("a map with int keys converted")
	}
}

func TestDecodeErrors(t *testing.T) {
	type config struct {
		Relay    string `json:"relay"`
		MaxPeers int    `json:"maxPeers"`
	}
	parse := func(s string) js.Value {
		v, err := Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var c config
	if err := Decode(parse(`{"relay":"http://r","maxPeers":4,"extra":true}`), &c); err != nil || c.Relay != "http://r" || c.MaxPeers != 4 {
		t.Fatalf("%+v %v", c, err)
	}
	for in, want := range map[string]string{
		`{"maxPeers":"8"}`: "maxPeers must be a number, not string",
		`{"maxPeers":1.5}`: "maxPeers must be a whole number in range, not 1.5",
		`{"relay":["x"]}`:  "relay must be a string, not object",
	} {
		if err := Decode(parse(in), &c); err == nil || err.Error() != want {
			t.Errorf("Decode(%s) = %v, want %q", in, err, want)
		}
	}
}
