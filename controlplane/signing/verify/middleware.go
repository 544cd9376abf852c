package verify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Middleware returns a handler that verifies each request with v before
// passing it to next. It reads the body (at most v's WithMaxBodyBytes,
// 1 MiB by default), verifies headers and body, and gives next a request
// whose Body yields the same bytes again.
//
// Rejected requests never reach next. They are answered, with a one-line
// plain-text reason, 400 Bad Request (missing or malformed headers, body
// unreadable), 401 Unauthorized (timestamp outside the tolerance, or no
// matching signature) or 413 Request Entity Too Large. The detailed reason
// goes to the WithOnReject function, if set.
func Middleware(v *Verifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(w, r, v.maxBody)
		if err == nil {
			err = v.Verify(r.Header, body)
		}
		if err != nil {
			if v.onReject != nil {
				v.onReject(r, err)
			}
			code, reason := rejection(err)
			http.Error(w, reason, code)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		next.ServeHTTP(w, r)
	})
}

// errBodyTooLarge and errBodyUnreadable are the middleware's own reasons.
var (
	errBodyTooLarge   = errors.New("webhook body too large")
	errBodyUnreadable = errors.New("webhook body unreadable")
)

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds the %d-byte limit (raise it with WithMaxBodyBytes)", errBodyTooLarge, r.ContentLength, limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, fmt.Errorf("%w: more than the %d-byte limit (raise it with WithMaxBodyBytes)", errBodyTooLarge, limit)
		}
		return nil, fmt.Errorf("%w: %v", errBodyUnreadable, err)
	}
	return body, nil
}

// rejection maps a verification error to a status code and a short reason.
func rejection(err error) (int, string) {
	for _, k := range []struct {
		err  error
		code int
	}{
		{ErrMissingHeaders, http.StatusBadRequest},
		{ErrMalformedHeader, http.StatusBadRequest},
		{errBodyUnreadable, http.StatusBadRequest},
		{errBodyTooLarge, http.StatusRequestEntityTooLarge},
		{ErrTimestampTooOld, http.StatusUnauthorized},
		{ErrTimestampTooNew, http.StatusUnauthorized},
		{ErrNoMatchingSignature, http.StatusUnauthorized},
	} {
		if errors.Is(err, k.err) {
			return k.code, k.err.Error()
		}
	}
	return http.StatusUnauthorized, "webhook verification failed"
}
