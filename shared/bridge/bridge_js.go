//go:build js && wasm

package bridge

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"syscall/js"
)

var (
	jsObject  = js.Global().Get("Object")
	jsPromise = js.Global().Get("Promise")
	jsError   = js.Global().Get("Error")
	jsJSON    = js.Global().Get("JSON")
)

// Global is the JavaScript global object (window in a page).
func Global() js.Value { return js.Global() }

// JSError is a JavaScript exception or rejection reason as a Go error.
type JSError struct {
	Name    string // "NotAllowedError", "TypeError", … ("" if not an Error)
	Message string
	Value   js.Value
}

func (e *JSError) Error() string {
	switch {
	case e.Name != "" && e.Message != "":
		return e.Name + ": " + e.Message
	case e.Message != "":
		return e.Message
	default:
		return e.Name
	}
}

// ErrorOf makes a Go error of a JavaScript value thrown or rejected with:
// an Error or DOMException keeps its name and message; anything else is
// its string form.
func ErrorOf(v js.Value) error {
	if v.Type() == js.TypeObject && !v.IsNull() {
		name, msg := v.Get("name"), v.Get("message")
		if name.Type() == js.TypeString || msg.Type() == js.TypeString {
			e := &JSError{Value: v}
			if name.Type() == js.TypeString {
				e.Name = name.String()
			}
			if msg.Type() == js.TypeString {
				e.Message = msg.String()
			}
			return e
		}
	}
	s := "undefined"
	if !v.IsUndefined() {
		s = js.Global().Get("String").Invoke(v).String()
	}
	return &JSError{Message: s, Value: v}
}

// recovered turns what syscall/js panics with (a js.Error for a thrown
// exception) into an error.
func recovered(r any) error {
	switch e := r.(type) {
	case js.Error:
		return ErrorOf(e.Value)
	case error:
		return e
	default:
		return fmt.Errorf("%v", r)
	}
}

// Call calls v's method name with args and returns its result; an
// exception it throws comes back as an error instead of a panic.
func Call(v js.Value, name string, args ...any) (result js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			result, err = js.Undefined(), recovered(r)
		}
	}()
	return v.Call(name, args...), nil
}

// New is Call for a constructor.
func New(ctor js.Value, args ...any) (result js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			result, err = js.Undefined(), recovered(r)
		}
	}()
	return ctor.New(args...), nil
}

// Await waits for promise p (or any thenable; other values are returned
// as they are) and returns what it resolved with, or its rejection as an
// error. Never call it inside a js.FuncOf callback. A promise that may
// never settle needs AwaitContext.
func Await(p js.Value) (js.Value, error) { return AwaitContext(context.Background(), p) }

// AwaitContext is Await that gives up when ctx ends, with ctx's error. A
// JavaScript promise cannot be cancelled: whatever it settles with later
// is dropped. Some never settle at all — per the WebRTC specification,
// the pending operations of an RTCPeerConnection that was closed — and
// waiting on one of those with Await would hold its goroutine forever.
func AwaitContext(ctx context.Context, p js.Value) (js.Value, error) {
	if p.Type() != js.TypeObject || p.Get("then").Type() != js.TypeFunction {
		return p, nil
	}
	type result struct {
		v   js.Value
		err error
	}
	done := make(chan result, 1)
	var ok, fail js.Func
	var once sync.Once
	settle := func(r result) {
		once.Do(func() {
			ok.Release()
			fail.Release()
			done <- r
		})
	}
	arg := func(args []js.Value) js.Value {
		if len(args) > 0 {
			return args[0]
		}
		return js.Undefined()
	}
	ok = js.FuncOf(func(_ js.Value, args []js.Value) any {
		settle(result{v: arg(args)})
		return nil
	})
	fail = js.FuncOf(func(_ js.Value, args []js.Value) any {
		settle(result{err: ErrorOf(arg(args))})
		return nil
	})
	if _, err := Call(p, "then", ok, fail); err != nil {
		settle(result{})
		return js.Undefined(), err
	}
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return js.Undefined(), ctx.Err()
	}
}

// Promise returns a JavaScript Promise settled by fn, which runs on a
// goroutine of its own: resolved with its value, or rejected with Error
// of its error.
func Promise(fn func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		executor.Release()
		go func() {
			v, err := func() (v any, err error) {
				defer func() {
					if r := recover(); r != nil {
						err = recovered(r)
					}
				}()
				return fn()
			}()
			if err != nil {
				reject.Invoke(Error(err))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	return jsPromise.New(executor)
}

// Deferred is a Promise with its settle functions, for a promise settled
// later by events.
type Deferred struct {
	Promise         js.Value
	resolve, reject js.Value
}

// NewDeferred returns an unsettled promise.
func NewDeferred() *Deferred {
	d := &Deferred{}
	executor := js.FuncOf(func(_ js.Value, args []js.Value) any {
		d.resolve, d.reject = args[0], args[1]
		return nil
	})
	d.Promise = jsPromise.New(executor) // the executor runs at once
	executor.Release()
	return d
}

// Resolve settles d with v.
func (d *Deferred) Resolve(v any) { d.resolve.Invoke(v) }

// Reject settles d with Error(err); the rejection is marked handled, so a
// host that waits on events instead of the promise gets no console noise.
func (d *Deferred) Reject(err error) {
	d.Promise.Call("catch", js.FuncOf(func(js.Value, []js.Value) any { return nil }))
	d.reject.Invoke(Error(err))
}

// Resolved is Promise.resolve(v).
func Resolved(v any) js.Value { return jsPromise.Call("resolve", v) }

// Coded is an error that carries a code for programs, as window.ddt's
// rejections do (their code property; see node.Error).
type Coded interface {
	error
	ErrorCode() string
}

// Error makes a JavaScript Error of err, whose code property is the code
// of the first Coded error in its chain, if any.
func Error(err error) js.Value {
	e := jsError.New(err.Error())
	var c Coded
	if errors.As(err, &c) {
		e.Set("code", c.ErrorCode())
	}
	return e
}

// Value converts v to a JavaScript value with the shape of its JSON
// encoding: a struct with JSON field names becomes a plain object of the
// same shape (see convert.go for what is supported).
func Value(v any) (js.Value, error) { return toJS(reflect.ValueOf(v)) }

// MustValue is Value for shapes that always convert (the node's views).
func MustValue(v any) js.Value {
	out, err := Value(v)
	if err != nil {
		panic(fmt.Sprintf("bridge: %T does not convert: %v", v, err))
	}
	return out
}

// Decode reads a JavaScript object into the struct v points to, by JSON
// field names, as Value would have written it.
func Decode(from js.Value, v any) error {
	if from.IsUndefined() || from.IsNull() {
		return nil
	}
	return fromJS(from, reflect.ValueOf(v))
}

// Object makes a plain JavaScript object from a map.
func Object(fields map[string]any) js.Value {
	o := jsObject.New()
	for k, v := range fields {
		o.Set(k, v)
	}
	return o
}

// Method wraps fn as a JavaScript function kept for the program's life.
func Method(fn func(args []js.Value) any) js.Func {
	return js.FuncOf(func(_ js.Value, args []js.Value) any { return fn(args) })
}

// Stringify is JSON.stringify(v).
func Stringify(v js.Value) string { return jsJSON.Call("stringify", v).String() }

// Parse is JSON.parse(s); a parse error comes back as an error.
func Parse(s string) (js.Value, error) { return Call(jsJSON, "parse", s) }
