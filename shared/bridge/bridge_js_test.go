//go:build js && wasm

package bridge

import (
	"context"
	"errors"
	"syscall/js"
	"testing"
)

type coded struct{}

func (coded) Error() string { return "no user named \"bob\"" }
func (coded) Code() string  { return "not-found" }

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
