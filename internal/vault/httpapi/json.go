package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only programmer error gets here: every body type marshals.
		panic("httpapi: marshalling response: " + err.Error())
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	w.Write(b)
}

// decodeBody reads a JSON body of at most limit bytes into v, refusing
// unknown fields, trailing data and type mismatches with a message that
// names the field.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) *apiError {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(err, limit)
		}
		return badRequest("body: unexpected data after the JSON object")
	}
	return nil
}

func jsonError(err error, limit int64) *apiError {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return badRequest("body: larger than %d bytes", limit)
	case errors.Is(err, io.EOF):
		return badRequest("body: empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("body: truncated JSON")
	case errors.As(err, &se):
		return badRequest("body: malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return badRequest("%s: must be %s, not %s", fieldName(te.Field), typeName(te.Type.String()), te.Value)
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badRequest("body: unknown field %s", f)
	}
	return badRequest("body: invalid JSON")
}

func fieldName(f string) string {
	if f == "" {
		return "body"
	}
	return f
}

// typeName says in words what a Go type accepts on the wire.
func typeName(t string) string {
	switch t {
	case "int64", "*int64":
		return "an integer (Unix seconds)"
	case "string", "*string":
		return "a string"
	case "bool", "*bool":
		return "true or false"
	}
	if strings.HasPrefix(t, "map[") {
		return "an object of strings"
	}
	return "an object"
}
