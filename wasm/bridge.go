//go:build js && wasm

package main

import (
	"errors"
	"syscall/js"
)

// The bridge between Go and the page: every syscall/js call of the
// browser entry goes through these helpers.

var (
	jsObject  = js.Global().Get("Object")
	jsPromise = js.Global().Get("Promise")
	jsError   = js.Global().Get("Error")
)

// promise returns a JavaScript Promise settled by fn, which runs on its
// own goroutine (blocking calls inside a js.FuncOf callback would hang).
func promise(fn func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(this js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		executor.Release()
		go func() {
			v, err := fn()
			if err != nil {
				reject.Invoke(jsErr(err))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	return jsPromise.New(executor)
}

// deferred is a Promise with its settle functions, for promises settled
// later by events (ddt.ready).
type deferred struct {
	value           js.Value
	resolve, reject js.Value
}

func newDeferred() *deferred {
	d := &deferred{}
	executor := js.FuncOf(func(this js.Value, args []js.Value) any {
		d.resolve, d.reject = args[0], args[1]
		return nil
	})
	d.value = jsPromise.New(executor) // the executor runs synchronously
	executor.Release()
	return d
}

// object makes a plain JavaScript object from a map.
func object(fields map[string]any) js.Value {
	o := jsObject.New()
	for k, v := range fields {
		o.Set(k, v)
	}
	return o
}

// method wraps fn as a JavaScript function kept for the page's lifetime.
func method(fn func(args []js.Value) any) js.Func {
	return js.FuncOf(func(this js.Value, args []js.Value) any { return fn(args) })
}

// codedError is an error the page sees as an Error whose code property
// says what kind of failure it is (see node.ExplainNameError).
type codedError struct{ code, msg string }

func (e *codedError) Error() string { return e.msg }

// jsErr makes a JavaScript Error of err, with a code property if err
// carries one.
func jsErr(err error) js.Value {
	e := jsError.New(err.Error())
	var ce *codedError
	if errors.As(err, &ce) {
		e.Set("code", ce.code)
	}
	return e
}
