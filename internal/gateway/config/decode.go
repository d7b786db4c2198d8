package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Ref names a sibling of the gateway, such as an sslCertificate or a
// frontendPort. In a file it is either the sibling's name or, in the ARM
// resource's shape, an object {"id": ".../sslCertificates/NAME"} whose last
// two segments say which collection and which name.
type Ref string

// Ignored is a property of the Azure resource that keygate accepts and
// does not use: read-only fields such as provisioningState and etag, and
// Azure plumbing such as gatewayIPConfigurations. It accepts any value, so
// that the JSON of an existing gateway loads as it is.
type Ignored struct{}

// OffOr is a string setting that "off" turns off. YAML reads a bare off
// as false, so false means "off" too.
type OffOr string

// Off is the value that turns an OffOr setting off.
const Off OffOr = "off"

// Duration is a length of time, written as a Go duration ("4h", "1m30s")
// or as a number of seconds.
type Duration time.Duration

var (
	refType      = reflect.TypeFor[Ref]()
	ignoredType  = reflect.TypeFor[Ignored]()
	offOrType    = reflect.TypeFor[OffOr]()
	durationType = reflect.TypeFor[Duration]()
)

// decoder fills typed structs from the generic tree that encoding/json
// makes of a document, the way encoding/json would with
// DisallowUnknownFields, except that every error names its place in the
// file, "properties" wrappers are flattened into their object, and Ref
// fields take either form of reference.
type decoder struct {
	errs Errors
}

// decodeDocument turns YAML or JSON into a Gateway. Duplicate keys are an
// error, as unknown fields are.
func decodeDocument(data []byte) (*Gateway, Errors) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, Errors{{Msg: "reading the file: " + cleanYAMLError(err)}}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, Errors{{Msg: "reading the file: " + err.Error()}}
	}
	if tree == nil {
		return nil, Errors{{Msg: "the file is empty"}}
	}
	var g Gateway
	d := &decoder{}
	d.value("", tree, reflect.ValueOf(&g).Elem())
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	return &g, nil
}

// cleanYAMLError drops the library's prefix from a YAML error.
func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "error converting YAML to JSON: ")
	return strings.TrimPrefix(s, "yaml: ")
}

func (d *decoder) fail(path, format string, args ...any) {
	d.errs = append(d.errs, Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// value decodes in into v, the place named path.
func (d *decoder) value(path string, in any, v reflect.Value) {
	switch {
	case v.Type() == ignoredType:
		return
	case v.Type() == refType:
		d.ref(path, in, v)
		return
	case v.Type() == offOrType && in == false:
		v.SetString(string(Off))
		return
	case v.Type() == durationType && in != nil:
		d.duration(path, in, v)
		return
	}
	if in == nil {
		// null leaves the zero value, as encoding/json does.
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(path, in, v.Elem())
	case reflect.Struct:
		d.object(path, in, v)
	case reflect.Slice:
		d.slice(path, in, v)
	case reflect.Map:
		d.mapping(path, in, v)
	case reflect.String:
		s, ok := in.(string)
		if !ok {
			d.fail(path, "want a string, got %s", describe(in))
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := in.(bool)
		if !ok {
			d.fail(path, "want true or false, got %s", describe(in))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		d.integer(path, in, v)
	default:
		panic("config: cannot decode into " + v.Type().String())
	}
}

func (d *decoder) integer(path string, in any, v reflect.Value) {
	n, ok := in.(json.Number)
	if !ok {
		d.fail(path, "want a whole number, got %s", describe(in))
		return
	}
	i, err := n.Int64()
	if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
		d.fail(path, "want a whole number, got %s", n)
		return
	}
	v.SetInt(i)
}

// duration reads a Go duration string or a number of seconds.
func (d *decoder) duration(path string, in any, v reflect.Value) {
	var dur time.Duration
	switch x := in.(type) {
	case string:
		var err error
		if dur, err = time.ParseDuration(strings.TrimSpace(x)); err != nil {
			d.fail(path, "%q is not a duration: write it like 4h, 15m or 90s, or as a number of seconds", x)
			return
		}
	case json.Number:
		secs, err := strconv.ParseFloat(x.String(), 64)
		if err != nil || math.IsInf(secs, 0) || secs > math.MaxInt64/float64(time.Second) {
			d.fail(path, "%s is not a number of seconds", x)
			return
		}
		dur = time.Duration(secs * float64(time.Second))
	default:
		d.fail(path, "want a duration such as 4h or a number of seconds, got %s", describe(in))
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) slice(path string, in any, v reflect.Value) {
	list, ok := in.([]any)
	if !ok {
		d.fail(path, "want a list, got %s", describe(in))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(list), len(list))
	for i, item := range list {
		d.value(fmt.Sprintf("%s[%d]", path, i), item, out.Index(i))
	}
	v.Set(out)
}

func (d *decoder) mapping(path string, in any, v reflect.Value) {
	obj, ok := in.(map[string]any)
	if !ok {
		d.fail(path, "want an object, got %s", describe(in))
		return
	}
	out := reflect.MakeMapWithSize(v.Type(), len(obj))
	for _, k := range sortedKeys(obj) {
		elem := reflect.New(v.Type().Elem()).Elem()
		d.value(join(path, fmt.Sprintf("%q", k)), obj[k], elem)
		out.SetMapIndex(reflect.ValueOf(k), elem)
	}
	v.Set(out)
}

// object decodes a JSON object into a struct, after merging a
// "properties" object into it as the ARM shape nests them.
func (d *decoder) object(path string, in any, v reflect.Value) {
	obj, ok := in.(map[string]any)
	if !ok {
		d.fail(path, "want an object, got %s", describe(in))
		return
	}
	obj = d.flatten(path, obj)
	fields := fieldsOf(v.Type())
	for _, k := range sortedKeys(obj) {
		idx, ok := fields[k]
		if !ok {
			d.fail(join(path, k), "unknown field%s", suggest(k, fields))
			continue
		}
		d.value(join(path, k), obj[k], v.FieldByIndex(idx))
	}
}

// flatten merges obj["properties"] into obj. A key found in both places is
// an error: which one was meant cannot be told.
func (d *decoder) flatten(path string, obj map[string]any) map[string]any {
	props, ok := obj["properties"]
	if !ok {
		return obj
	}
	inner, ok := props.(map[string]any)
	if !ok {
		d.fail(join(path, "properties"), "want an object, got %s", describe(props))
		return obj
	}
	out := make(map[string]any, len(obj)+len(inner))
	for k, val := range obj {
		if k != "properties" {
			out[k] = val
		}
	}
	for k, val := range inner {
		if _, dup := out[k]; dup {
			d.fail(join(path, "properties."+k), "given both inside and outside properties")
			continue
		}
		out[k] = val
	}
	return out
}

// ref decodes a reference given as a name or as {"id": ".../COLLECTION/NAME"}.
// The collection is checked against the field when the file is
// validated, which knows what each field refers to.
func (d *decoder) ref(path string, in any, v reflect.Value) {
	switch r := in.(type) {
	case nil:
	case string:
		v.SetString(r)
	case map[string]any:
		id, ok := r["id"].(string)
		if !ok || len(r) != 1 {
			d.fail(path, `want a name or {"id": ".../COLLECTION/NAME"}`)
			return
		}
		v.SetString(id)
	default:
		d.fail(path, `want a name or {"id": ".../COLLECTION/NAME"}, got %s`, describe(in))
	}
}

// fieldsOf maps the JSON names of t's fields, embedded structs flattened,
// to their index paths.
func fieldsOf(t reflect.Type) map[string][]int {
	out := make(map[string][]int)
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			idx := append(append([]int(nil), prefix...), i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			out[name] = idx
		}
	}
	walk(t, nil)
	return out
}

// suggest returns a hint naming a field whose name differs from k only in
// case, the most common slip (hostname for hostName).
func suggest(k string, fields map[string][]int) string {
	for name := range fields {
		if strings.EqualFold(name, k) {
			return fmt.Sprintf(" (did you mean %q?)", name)
		}
	}
	return ""
}

func describe(in any) string {
	switch x := in.(type) {
	case string:
		return "a string"
	case json.Number:
		return "the number " + x.String()
	case bool:
		return fmt.Sprintf("%v", x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", in)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
