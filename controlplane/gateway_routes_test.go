package controlplane

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestEveryRESTRouteIsServed calls every RPC that its proto gives a REST
// route (google.api.http), with placeholder path values, and checks that
// the gateway routes it to the service: the answer may be any error of the
// call itself (not found, invalid argument...), but never the gateway's
// own "no such route" 404 or 405. A service whose handlers are not
// registered on the gateway fails here, as ClusterService's did: GET
// /v1/cluster was documented and answered 404.
func TestEveryRESTRouteIsServed(t *testing.T) {
	const key = "route-check-admin-key-0123456789"
	mk, err := ParseMasterKey("cm91dGUtY2hlY2stbWFzdGVyLWtleS0wMTIzNDU2Nzg=") // 32 bytes
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Start(context.Background(), Config{DataDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", AdminKey: key, MasterKey: mk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	client := &http.Client{Timeout: 10 * time.Second}
	placeholder := regexp.MustCompile(`\{[^}]*\}`)
	routes := 0
	for _, req := range restRequests(t) {
		if req.path == "" {
			continue
		}
		routes++
		path := placeholder.ReplaceAllString(req.path, "zz-route-check")
		body := ""
		if req.body != "" {
			body = "{}"
		}
		// A streaming answer (tail, watch, snapshot) would wait; the
		// admin-only and placeholder values make each of them fail at once.
		r, err := http.NewRequest(req.verb, "http://"+srv.HTTPAddr()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(r)
		if err != nil {
			t.Fatalf("%s: %s %s: %v", req.rpc, req.verb, path, err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code := resp.StatusCode
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		if (code == http.StatusNotFound && strings.EqualFold(e.Message, "Not Found")) || code == http.StatusMethodNotAllowed || code == http.StatusNotImplemented {
			t.Errorf("%s: %s %s answered %d %q: the REST gateway does not serve this documented route", req.rpc, req.verb, path, code, data)
		}
	}
	if routes < 40 {
		t.Fatalf("found %d REST routes in the protos; expected the public API's (40 or more)", routes)
	}
}
