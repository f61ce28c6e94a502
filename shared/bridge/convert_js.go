//go:build js && wasm

package bridge

import (
	"fmt"
	"reflect"
	"strings"
	"syscall/js"
)

// The shapes of Value and Decode are those of encoding/json, for the
// kinds the node's views use: structs (exported fields, named by their
// json tag, "-" skipped, ",omitempty" honoured), strings, booleans,
// integers and floats (JavaScript numbers), slices and arrays (arrays;
// []byte too, not base64), maps with string keys, pointers and
// interfaces (nil is null). encoding/json itself would cost the wasm
// about 0.3 MB.

var jsArray = js.Global().Get("Array")

type field struct {
	index     int
	name      string
	omitEmpty bool
}

func fields(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" && opts == "" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, field{index: i, name: name, omitEmpty: strings.Contains(","+opts+",", ",omitempty,")})
	}
	return out
}

func toJS(v reflect.Value) (js.Value, error) {
	switch v.Kind() {
	case reflect.Invalid:
		return js.Null(), nil
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return js.Null(), nil
		}
		return toJS(v.Elem())
	case reflect.Bool:
		return js.ValueOf(v.Bool()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return js.ValueOf(float64(v.Int())), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return js.ValueOf(float64(v.Uint())), nil
	case reflect.Float32, reflect.Float64:
		return js.ValueOf(v.Float()), nil
	case reflect.String:
		return js.ValueOf(v.String()), nil
	case reflect.Slice:
		if v.IsNil() {
			return js.Null(), nil
		}
		fallthrough
	case reflect.Array:
		arr := jsArray.New(v.Len())
		for i := 0; i < v.Len(); i++ {
			e, err := toJS(v.Index(i))
			if err != nil {
				return js.Undefined(), err
			}
			arr.SetIndex(i, e)
		}
		return arr, nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return js.Undefined(), fmt.Errorf("map key %s is not a string", v.Type().Key())
		}
		if v.IsNil() {
			return js.Null(), nil
		}
		o := jsObject.New()
		for it := v.MapRange(); it.Next(); {
			e, err := toJS(it.Value())
			if err != nil {
				return js.Undefined(), err
			}
			o.Set(it.Key().String(), e)
		}
		return o, nil
	case reflect.Struct:
		o := jsObject.New()
		for _, f := range fields(v.Type()) {
			fv := v.Field(f.index)
			if f.omitEmpty && fv.IsZero() {
				continue
			}
			e, err := toJS(fv)
			if err != nil {
				return js.Undefined(), fmt.Errorf("%s: %w", f.name, err)
			}
			o.Set(f.name, e)
		}
		return o, nil
	}
	return js.Undefined(), fmt.Errorf("cannot convert a %s", v.Type())
}

// fromJS sets the value p points to from v; undefined and null leave it
// as it is.
func fromJS(v js.Value, p reflect.Value) error {
	if p.Kind() != reflect.Pointer || p.IsNil() {
		return fmt.Errorf("bridge: Decode needs a non-nil pointer, not %s", p.Type())
	}
	return set(v, p.Elem(), "")
}

func set(v js.Value, dst reflect.Value, path string) error {
	if v.IsUndefined() || v.IsNull() {
		return nil
	}
	bad := func(want string) error {
		where := path
		if where == "" {
			where = "the value"
		}
		return fmt.Errorf("%s must be %s, not %s", where, want, v.Type())
	}
	switch dst.Kind() {
	case reflect.Pointer:
		if dst.IsNil() {
			dst.Set(reflect.New(dst.Type().Elem()))
		}
		return set(v, dst.Elem(), path)
	case reflect.Bool:
		if v.Type() != js.TypeBoolean {
			return bad("true or false")
		}
		dst.SetBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type() != js.TypeNumber {
			return bad("a number")
		}
		f := v.Float()
		if f != float64(int64(f)) || dst.OverflowInt(int64(f)) {
			return fmt.Errorf("%s must be a whole number in range, not %v", path, f)
		}
		dst.SetInt(int64(f))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.Type() != js.TypeNumber {
			return bad("a number")
		}
		f := v.Float()
		if f < 0 || f != float64(uint64(f)) || dst.OverflowUint(uint64(f)) {
			return fmt.Errorf("%s must be a whole number in range, not %v", path, f)
		}
		dst.SetUint(uint64(f))
	case reflect.Float32, reflect.Float64:
		if v.Type() != js.TypeNumber {
			return bad("a number")
		}
		dst.SetFloat(v.Float())
	case reflect.String:
		if v.Type() != js.TypeString {
			return bad("a string")
		}
		dst.SetString(v.String())
	case reflect.Slice:
		if !v.InstanceOf(jsArray) {
			return bad("an array")
		}
		n := v.Length()
		s := reflect.MakeSlice(dst.Type(), n, n)
		for i := 0; i < n; i++ {
			if err := set(v.Index(i), s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		dst.Set(s)
	case reflect.Struct:
		if v.Type() != js.TypeObject {
			return bad("an object")
		}
		for _, f := range fields(dst.Type()) {
			name := f.name
			if path != "" {
				name = path + "." + f.name
			}
			if err := set(v.Get(f.name), dst.Field(f.index), name); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("bridge: cannot decode into a %s", dst.Type())
	}
	return nil
}
