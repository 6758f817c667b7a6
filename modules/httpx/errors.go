// Package httpx holds what every module's HTTP surface shares: the route declaration that the
// app registers behind the right guard, the JSON error type, and the request-body reader: the
// strict JSON object reader of package jsonx, whose refusals become 400s naming the offending
// field.
package httpx

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an API error rendered as {"error": {"code", "message", "field"}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Error implements error.
func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Field)
	}
	return e.Code + ": " + e.Message
}

// Invalid is a 400 naming the field at fault.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fmt.Sprintf(format, args...), Field: field}
}

// NotFound is a 404.
func NotFound(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf(format, args...), Field: field}
}

// Conflict is a 409.
func Conflict(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: "conflict", Message: fmt.Sprintf(format, args...), Field: field}
}

// Unavailable is the 503 answered while the database cannot be reached.
var Unavailable = &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the database is unavailable; retry shortly"}

// Internal is the 500 answered for anything unexpected; it never carries details.
var Internal = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}

// As extracts an *Error from err.
func As(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
