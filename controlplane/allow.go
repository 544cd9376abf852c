package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/hookwire/hookwire/gen/openapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// routes knows, for each REST path template of the API document, which
// methods it takes, so a request with another method can be answered 405
// with an Allow header (RFC 9110 section 15.5.6) instead of the gateway's
// 501.
type routes []route

type route struct {
	re      *regexp.Regexp
	methods []string
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// loadRoutes reads the path templates of the generated OpenAPI document.
func loadRoutes() (routes, error) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.OpenAPI, &doc); err != nil {
		return nil, fmt.Errorf("read the API document's paths: %w", err)
	}
	var out routes
	for tmpl, ops := range doc.Paths {
		var re strings.Builder
		re.WriteString("^")
		last := 0
		for _, m := range pathParam.FindAllStringIndex(tmpl, -1) {
			re.WriteString(regexp.QuoteMeta(tmpl[last:m[0]]))
			re.WriteString(`[^/:]+`)
			last = m[1]
		}
		re.WriteString(regexp.QuoteMeta(tmpl[last:]))
		re.WriteString("$")
		r := route{re: regexp.MustCompile(re.String())}
		for m := range ops {
			r.methods = append(r.methods, strings.ToUpper(m))
		}
		out = append(out, r)
	}
	return out, nil
}

// allowed lists the methods path takes (sorted), nil if none.
func (rs routes) allowed(path string) []string {
	var out []string
	for _, r := range rs {
		if r.re.MatchString(path) {
			for _, m := range r.methods {
				if !slices.Contains(out, m) {
					out = append(out, m)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// routingErrors answers a known path with the wrong method 405 with
// Allow; other routing errors as the gateway does.
func (rs routes) routingErrors(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus == http.StatusMethodNotAllowed {
		if allow := rs.allowed(r.URL.Path); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			w.Header().Set("Content-Type", m.ContentType(nil))
			w.WriteHeader(http.StatusMethodNotAllowed)
			st := status.Newf(codes.Unimplemented, "method %s is not allowed on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, ", "))
			if body, err := m.Marshal(st.Proto()); err == nil {
				_, _ = w.Write(body)
			}
			return
		}
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
}
