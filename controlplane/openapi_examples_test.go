package controlplane_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/hookwire/hookwire/controlplane"
)

// exampleOrder is the order TestOpenAPIExamplesReplay replays the
// documented examples in (scripts/openapi/overlay.yaml): each one's objects
// come from the ones before. An operation with examples must be listed.
var exampleOrder = []string{
	"TenantService_CreateTenant",
	"TenantService_GetTenant",
	"TenantService_ListTenants",
	"ApiKeyService_CreateApiKey",
	"ApiKeyService_ListApiKeys",
	"SubscriptionService_ListSubscriptions",
	"SubscriptionService_CreateSubscription",
	"SubscriptionService_GetSubscription",
	"SubscriptionService_UpdateSubscription",
	"SubscriptionService_PauseSubscription",
	"SubscriptionService_ResumeSubscription",
	"SubscriptionService_RotateSubscriptionSecret",
	"EventService_PublishEvent",
	"EventService_PublishEvents",
	"EventService_PublishRawEvent",
	"DeliveryService_ListDeliveries",
	"DeliveryService_GetDelivery",
	"DeliveryService_ListAttempts",
	"DeliveryService_CancelDelivery",
	"DeliveryService_RetryDelivery",
	"DeliveryService_ResendEvent",
	"DeliveryService_RecoverDeliveries",
	"DeliveryService_GetOperation",
	"StatsService_GetDeliveryStats",
	"AuditService_ListAuditEvents",
	"AgentAdminService_CreateJoinToken",
	"AgentAdminService_ListJoinTokens",
	"AgentAdminService_RevokeJoinToken",
	"AgentAdminService_ListAgents",
	"AgentAdminService_DrainAgent",
	"ApiKeyService_RevokeApiKey",
	"SubscriptionService_DeleteSubscription",
	"TenantService_DeleteTenant",
}

type docExamples map[string]struct {
	Value any `json:"value"`
}

type docOperation struct {
	OperationID string `json:"operationId"`
	Parameters  []struct {
		Name     string      `json:"name"`
		In       string      `json:"in"`
		Examples docExamples `json:"examples"`
	} `json:"parameters"`
	RequestBody struct {
		Content map[string]struct {
			Examples docExamples `json:"examples"`
		} `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Content map[string]struct {
			Examples docExamples `json:"examples"`
		} `json:"content"`
	} `json:"responses"`
}

// documentedID matches the ids Hookwire assigns ("sub_01KBX...", and
// "hwk_..." / "hwj_..." for API keys and join tokens): an
// example's id stands for the one the server assigned in the same place.
var documentedID = regexp.MustCompile(`^(?:[a-z]+_[0-9A-HJKMNP-TV-Z]{26}|hw[kj]_[a-z2-7]{16})$`)

// TestOpenAPIExamplesReplay sends every request example of the served
// OpenAPI document to a live server and checks that it gets the documented
// status and a response of the documented shape: the same members, arrays
// of the same length and values of the same JSON types. Ids in the examples
// stand for those the server assigns where the example shows them.
func TestOpenAPIExamplesReplay(t *testing.T) {
	h := start(t, t.TempDir(), controlplane.Config{})
	base := "http://" + h.srv.HTTPAddr()
	resp, body := getNoKey(t, base+"/openapi.json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d", resp.StatusCode)
	}
	var doc struct {
		Paths map[string]map[string]docOperation `json:"paths"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	type route struct {
		method, path string
		op           docOperation
	}
	ops := map[string]route{}
	for path, methods := range doc.Paths {
		for method, op := range methods {
			ops[op.OperationID] = route{strings.ToUpper(method), path, op}
			if len(examplesOf(op)) > 0 && !slices.Contains(exampleOrder, op.OperationID) {
				t.Errorf("%s has examples; add it to exampleOrder", op.OperationID)
			}
		}
	}

	ids := map[string]string{} // documented id -> the server's
	assigned := func(s string) string {
		for doc, real := range ids {
			s = strings.ReplaceAll(s, doc, real)
		}
		return s
	}
	replayed := 0
	for _, id := range exampleOrder {
		r, ok := ops[id]
		if !ok {
			t.Fatalf("exampleOrder names %s, which the document does not have", id)
		}
		for _, ex := range examplesOf(r.op) {
			name := id + " example " + ex.name
			path := r.path
			query := url.Values{}
			header := http.Header{}
			for _, p := range r.op.Parameters {
				v, ok := p.Examples[ex.name]
				if !ok {
					continue
				}
				var values []string
				if list, isList := v.Value.([]any); isList {
					for _, item := range list {
						values = append(values, assigned(fmt.Sprint(item)))
					}
				} else {
					values = []string{assigned(fmt.Sprint(v.Value))}
				}
				switch p.In {
				case "path":
					path = strings.Replace(path, "{"+p.Name+"}", url.PathEscape(values[0]), 1)
				case "query":
					query[p.Name] = values
				case "header":
					header[http.CanonicalHeaderKey(p.Name)] = values
				}
			}
			if strings.Contains(path, "{") {
				t.Fatalf("%s: no value for a path parameter of %s", name, path)
			}
			var reqBody io.Reader
			for ct, media := range r.op.RequestBody.Content {
				v, ok := media.Examples[ex.name]
				if !ok {
					continue
				}
				if s, isString := v.Value.(string); isString && ct != "application/json" {
					reqBody = strings.NewReader(assigned(s))
					header.Set("Content-Type", "application/octet-stream")
					continue
				}
				b, err := json.Marshal(v.Value)
				if err != nil {
					t.Fatal(err)
				}
				reqBody = strings.NewReader(assigned(string(b)))
				header.Set("Content-Type", "application/json")
			}
			if ex.status != "401" {
				header.Set("Authorization", "Bearer "+adminKey)
			}
			target := base + path
			if len(query) > 0 {
				target += "?" + query.Encode()
			}
			req, err := http.NewRequest(r.method, target, reqBody)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = header
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(resp.StatusCode) != ex.status {
				t.Fatalf("%s: %s %s answered %d %s; the document says %s", name, r.method, target, resp.StatusCode, got, ex.status)
			}
			var actual any
			dec := json.NewDecoder(bytes.NewReader(got))
			dec.UseNumber()
			if err := dec.Decode(&actual); err != nil {
				t.Fatalf("%s: the answer is not JSON: %v\n%s", name, err, got)
			}
			if err := sameShape("", ex.response, actual, ids); err != nil {
				t.Fatalf("%s: %v\nthe server answered %s\n(the example ids stand for %v)", name, err, got, ids)
			}
			replayed++
		}
	}
	if replayed < len(exampleOrder) {
		t.Errorf("replayed %d examples for %d operations", replayed, len(exampleOrder))
	}
}

type replayExample struct {
	name, status string
	response     any
}

// examplesOf lists an operation's examples by the responses that show
// them, sorted by name.
func examplesOf(op docOperation) []replayExample {
	var out []replayExample
	for status, r := range op.Responses {
		for _, media := range r.Content {
			for name, ex := range media.Examples {
				out = append(out, replayExample{name: name, status: status, response: ex.Value})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// sameShape compares a documented JSON value with the server's: same
// object members, same array lengths, same JSON types. It learns which
// assigned id each documented id stands for.
func sameShape(at string, doc, got any, ids map[string]string) error {
	switch d := doc.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %T", at, got)
		}
		for k := range g {
			if _, ok := d[k]; !ok {
				return fmt.Errorf("%s: the server sends %q, which the example does not show", at, k)
			}
		}
		for k, v := range d {
			gv, ok := g[k]
			if !ok {
				return fmt.Errorf("%s: the example shows %q, which the server does not send", at, k)
			}
			if err := sameShape(at+"."+k, v, gv, ids); err != nil {
				return err
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(d) {
			return fmt.Errorf("%s: want an array of %d, got %v", at, len(d), got)
		}
		for i := range d {
			if err := sameShape(fmt.Sprintf("%s[%d]", at, i), d[i], g[i], ids); err != nil {
				return err
			}
		}
	case string:
		g, ok := got.(string)
		if !ok {
			return fmt.Errorf("%s: want a string, got %v", at, got)
		}
		if g != d && documentedID.MatchString(d) {
			if prev, seen := ids[d]; seen && prev != g {
				return fmt.Errorf("%s: the example's %s stood for %s before, here the server has %s", at, d, prev, g)
			}
			ids[d] = g
		}
	case json.Number:
		if _, ok := got.(json.Number); !ok {
			return fmt.Errorf("%s: want a number, got %v", at, got)
		}
	case bool:
		if _, ok := got.(bool); !ok {
			return fmt.Errorf("%s: want true or false, got %v", at, got)
		}
	case nil:
		if got != nil {
			return fmt.Errorf("%s: want null, got %v", at, got)
		}
	}
	return nil
}
