// Command openapi writes the OpenAPI 3.1 document of Hookwire's REST API
// (gen/openapi/hookwire.openapi.json, served at GET /openapi.json). It is run
// by scripts/generate.sh; do not edit its output.
//
// It reads the Swagger 2.0 document protoc-gen-openapiv2 generates from the
// protos' HTTP bindings and comments, converts it to OpenAPI 3.1, and adds
// what the protos cannot say, from overlay.yaml next to this file: the
// document's info, the bearer-key security scheme, the error responses
// (one Error schema, referenced by every operation for the statuses it can
// answer), the REST-only shapes the gateway implements by hand (an event
// payload is any JSON value; a raw publish takes the request body of any
// content type), and request/response examples, which the control plane's
// tests replay against a live server.
//
// The output depends only on its inputs: maps are written with sorted
// keys, so running it twice gives the same bytes.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

func main() {
	in := flag.String("in", "gen/openapi/hookwire.swagger.json", "Swagger 2.0 document written by protoc-gen-openapiv2")
	overlay := flag.String("overlay", "scripts/openapi/overlay.yaml", "what the protos cannot say: info, errors, examples")
	out := flag.String("out", "gen/openapi/hookwire.openapi.json", "OpenAPI 3.1 document to write")
	flag.Parse()
	if err := run(*in, *overlay, *out); err != nil {
		fmt.Fprintln(os.Stderr, "openapi:", err)
		os.Exit(1)
	}
}

func run(inPath, overlayPath, outPath string) error {
	v2data, err := os.ReadFile(inPath)
	if err != nil {
		return err
	}
	var v2 obj
	if err := json.Unmarshal(v2data, &v2); err != nil {
		return fmt.Errorf("%s: %w", inPath, err)
	}
	ovData, err := os.ReadFile(overlayPath)
	if err != nil {
		return err
	}
	var ov overlay
	dec := yaml.NewDecoder(bytes.NewReader(ovData))
	dec.KnownFields(true)
	if err := dec.Decode(&ov); err != nil {
		return fmt.Errorf("%s: %w", overlayPath, err)
	}
	doc, err := convert(v2, &ov)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	return os.WriteFile(outPath, b.Bytes(), 0o644)
}

type obj = map[string]any

// overlay is overlay.yaml.
type overlay struct {
	// Info, Servers, Tags (descriptions added to the generated ones) and
	// SecuritySchemes go into the document as they are; every operation
	// needs the first security scheme.
	Info            obj            `yaml:"info"`
	Servers         []any          `yaml:"servers"`
	SecuritySchemes map[string]obj `yaml:"securitySchemes"`
	// Schemas are added to components.schemas; a generated schema of the
	// same name has the given properties replaced (or added) and the given
	// keywords set.
	Schemas map[string]obj `yaml:"schemas"`
	// Errors are the error responses, by status, with the condition under
	// which an operation lists them.
	Errors map[string]errorResponse `yaml:"errors"`
	// Operations change generated operations, by operationId.
	Operations map[string]operationOverlay `yaml:"operations"`
	// Examples, by operationId: each is a request and the response the
	// server gives to it, replayed in this order by the control plane's
	// tests.
	Examples map[string][]example `yaml:"examples"`
}

type errorResponse struct {
	// Name of the component in components.responses.
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Headers     obj    `yaml:"headers"`
	// When: "always", "path-params" (the path names an object),
	// "request-body", "unary" (not for streams), or "listed" (only the
	// operations that name the status in their errors).
	When    string `yaml:"when"`
	Example any    `yaml:"example"`
}

type operationOverlay struct {
	Description string `yaml:"description"`
	// Parameters are merged into the generated parameter of the same name,
	// or added when there is none (e.g. headers).
	Parameters []obj `yaml:"parameters"`
	// RequestBody replaces the generated one.
	RequestBody obj `yaml:"requestBody"`
	// Errors lists statuses whose condition is "listed".
	Errors []string `yaml:"errors"`
	// Response200 replaces the 200 response's description.
	Response200 string `yaml:"response200"`
}

type example struct {
	Name    string `yaml:"name"`
	Summary string `yaml:"summary"`
	// Params are path, query and header parameter values by name.
	Params map[string]any `yaml:"params"`
	// Body is the request body; ContentType its media type in the
	// document's requestBody (application/json when empty).
	Body        any    `yaml:"body"`
	ContentType string `yaml:"contentType"`
	Status      string `yaml:"status"`
	Response    any    `yaml:"response"`
}

const (
	v2Ref = "#/definitions/"
	v3Ref = "#/components/schemas/"
)

func convert(v2 obj, ov *overlay) (obj, error) {
	if v2["swagger"] != "2.0" {
		return nil, fmt.Errorf("input is not a Swagger 2.0 document")
	}
	doc := obj{
		"openapi":  "3.1.0",
		"info":     ov.Info,
		"servers":  ov.Servers,
		"tags":     v2["tags"],
		"security": []any{},
	}
	var schemeNames []string
	for name := range ov.SecuritySchemes {
		schemeNames = append(schemeNames, name)
	}
	sort.Strings(schemeNames)
	for _, name := range schemeNames {
		doc["security"] = append(doc["security"].([]any), obj{name: []any{}})
	}

	schemas := obj{}
	for name, s := range asObj(v2["definitions"]) {
		schemas[name] = convertSchema(s)
	}
	for name, s := range ov.Schemas {
		cur, ok := schemas[name].(obj)
		if !ok {
			schemas[name] = convertSchema(normalize(s))
			continue
		}
		for k, v := range normalize(s).(obj) {
			if k != "properties" {
				cur[k] = v
				continue
			}
			props := asObj(cur["properties"])
			for pk, pv := range asObj(v) {
				props[pk] = pv
			}
			cur["properties"] = props
		}
	}

	responses := obj{}
	for status, e := range ov.Errors {
		r := obj{
			"description": e.Description,
			"content": obj{"application/json": obj{
				"schema":  obj{"$ref": v3Ref + "Error"},
				"example": normalize(e.Example),
			}},
		}
		if e.Headers != nil {
			r["headers"] = normalize(e.Headers)
		}
		responses[e.Name] = r
		_ = status
	}

	paths := obj{}
	seenOps := map[string]bool{}
	for tmpl, item := range asObj(v2["paths"]) {
		// {subscription.id} becomes {id}: the methods join those of the
		// path that already names the segment so.
		newTmpl, renames := renamePathParams(tmpl)
		ops, ok := paths[newTmpl].(obj)
		if !ok {
			ops = obj{}
		}
		for method, op := range asObj(item) {
			o, err := convertOperation(asObj(op), method, renames, ov)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", strings.ToUpper(method), tmpl, err)
			}
			seenOps[o["operationId"].(string)] = true
			if _, dup := ops[method]; dup {
				return nil, fmt.Errorf("two %s operations on %s", strings.ToUpper(method), newTmpl)
			}
			ops[method] = o
		}
		paths[newTmpl] = ops
	}
	for id := range ov.Operations {
		if !seenOps[id] {
			return nil, fmt.Errorf("overlay.yaml changes operation %s, which the API does not have", id)
		}
	}
	for id := range ov.Examples {
		if !seenOps[id] {
			return nil, fmt.Errorf("overlay.yaml has examples for operation %s, which the API does not have", id)
		}
	}
	doc["paths"] = paths
	doc["components"] = obj{
		"schemas":         schemas,
		"responses":       responses,
		"securitySchemes": normalize(ov.SecuritySchemes),
	}
	prune(doc)
	return doc, nil
}

// sentenceEnd ends a comment's first sentence.
var sentenceEnd = regexp.MustCompile(`\.(\s|$)`)

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// renamePathParams names a path parameter bound to a field of the request
// body ({subscription.id}) by its last segment ({id}), as the other routes
// name the same URL segment. The URL does not change: the gateway binds
// path segments by position.
func renamePathParams(tmpl string) (string, map[string]string) {
	renames := map[string]string{}
	out := pathParam.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[1 : len(m)-1]
		if i := strings.LastIndexByte(name, '.'); i >= 0 {
			renames[name] = name[i+1:]
			return "{" + name[i+1:] + "}"
		}
		return m
	})
	return out, renames
}

func convertOperation(op obj, method string, renames map[string]string, ov *overlay) (obj, error) {
	id, _ := op["operationId"].(string)
	if id == "" {
		return nil, fmt.Errorf("no operationId")
	}
	out := obj{"operationId": id, "tags": op["tags"]}
	if s, ok := op["summary"].(string); ok {
		// protoc-gen-openapiv2 puts a comment's first paragraph in summary;
		// a summary is one line, the rest is the description.
		first, rest := s, ""
		for _, loc := range sentenceEnd.FindAllStringIndex(s, -1) {
			if !strings.HasSuffix(s[:loc[0]], "e.g") && !strings.HasSuffix(s[:loc[0]], "i.e") {
				first, rest = s[:loc[0]], s[loc[1]:]
				break
			}
		}
		out["summary"] = strings.Join(strings.Fields(first), " ")
		desc := strings.TrimSpace(s)
		if d, ok := op["description"].(string); ok {
			desc += "\n\n" + d
		}
		if strings.TrimSpace(rest) != "" || op["description"] != nil {
			out["description"] = desc
		}
	}
	oo := ov.Operations[id]
	if oo.Description != "" {
		d, _ := out["description"].(string)
		out["description"] = strings.TrimSpace(d + "\n\n" + oo.Description)
	}

	var params []any
	hasPathParams := false
	for _, p := range asSlice(op["parameters"]) {
		p := asObj(p)
		in := p["in"].(string)
		if in == "body" {
			out["requestBody"] = obj{
				"required": true,
				"content":  obj{"application/json": obj{"schema": convertSchema(p["schema"])}},
			}
			if d, ok := p["description"]; ok {
				out["requestBody"].(obj)["description"] = d
			}
			continue
		}
		name := p["name"].(string)
		np := obj{"name": name, "in": in}
		if r, ok := renames[name]; ok && in == "path" {
			np["name"] = r
			desc, _ := p["description"].(string)
			p["description"] = strings.TrimSpace(desc + " (The body's " + name + ".)")
		}
		if in == "path" {
			hasPathParams = true
			np["required"] = true
		} else if p["required"] == true {
			np["required"] = true
		}
		if d, ok := p["description"]; ok {
			np["description"] = d
		}
		schema := obj{}
		for _, k := range []string{"type", "format", "items", "enum", "default", "pattern", "minimum", "maximum"} {
			if v, ok := p[k]; ok {
				schema[k] = convertSchema(v)
			}
		}
		np["schema"] = schema
		params = append(params, np)
	}
	for _, add := range oo.Parameters {
		add := normalize(add).(obj)
		i := slices.IndexFunc(params, func(p any) bool { return p.(obj)["name"] == add["name"] })
		if i < 0 {
			params = append(params, add)
			continue
		}
		for k, v := range add {
			params[i].(obj)[k] = v
		}
	}
	if len(params) > 0 {
		out["parameters"] = params
	}
	if oo.RequestBody != nil {
		out["requestBody"] = normalize(oo.RequestBody)
	}

	responses := obj{}
	stream := false
	for code, r := range asObj(op["responses"]) {
		if code == "default" {
			continue // replaced by the listed error responses
		}
		r := asObj(r)
		desc, _ := r["description"].(string)
		nr := obj{"description": desc}
		if strings.Contains(desc, "(streaming responses)") {
			stream = true
			nr["description"] = "A stream of JSON objects, one per line: {\"result\": ...} for each item, or {\"error\": ...} if the stream fails after it started. With Accept: text/event-stream the same objects come as server-sent events."
		}
		if s, ok := r["schema"]; ok {
			schema := convertSchema(s)
			nr["content"] = obj{"application/json": obj{"schema": schema}}
			if stream {
				nr["content"].(obj)["text/event-stream"] = obj{"schema": obj{"type": "string", "description": "Server-sent events; each data line is one of the JSON objects above."}}
			}
		}
		responses[code] = nr
	}
	if oo.Response200 != "" {
		asObj(responses["200"])["description"] = oo.Response200
	}
	for status, e := range ov.Errors {
		var add bool
		switch e.When {
		case "always":
			add = true
		case "path-params":
			add = hasPathParams
		case "request-body":
			add = out["requestBody"] != nil
		case "unary":
			add = !stream
		case "listed":
			add = slices.Contains(oo.Errors, status)
		default:
			return nil, fmt.Errorf("overlay.yaml: error %s: unknown condition %q", status, e.When)
		}
		if add {
			responses[status] = obj{"$ref": "#/components/responses/" + e.Name}
		}
	}
	for _, s := range oo.Errors {
		if _, ok := ov.Errors[s]; !ok {
			return nil, fmt.Errorf("overlay.yaml lists error %s, which has no entry under errors", s)
		}
	}
	out["responses"] = responses
	_ = method

	for _, ex := range ov.Examples[id] {
		if err := addExample(out, ex, ov); err != nil {
			return nil, fmt.Errorf("example %q: %w", ex.Name, err)
		}
	}
	return out, nil
}

// addExample puts one example into the operation, under the same name in
// each parameter, the request body and the response it gets.
func addExample(op obj, ex example, ov *overlay) error {
	if ex.Name == "" || ex.Status == "" {
		return fmt.Errorf("an example needs a name and a status")
	}
	named := func(v any) obj {
		e := obj{"value": normalize(v)}
		if ex.Summary != "" {
			e["summary"] = ex.Summary
		}
		return e
	}
	for name, v := range ex.Params {
		found := false
		for _, p := range asSlice(op["parameters"]) {
			p := asObj(p)
			if p["name"] == name {
				found = true
				exs := asObj(p["examples"])
				exs[ex.Name] = obj{"value": normalize(v)}
				p["examples"] = exs
			}
		}
		if !found {
			return fmt.Errorf("no parameter %s", name)
		}
	}
	for _, p := range asSlice(op["parameters"]) {
		p := asObj(p)
		if p["in"] == "path" {
			if _, ok := ex.Params[p["name"].(string)]; !ok {
				return fmt.Errorf("no value for path parameter %s", p["name"])
			}
		}
	}
	if ex.Body != nil {
		rb := asObj(op["requestBody"])
		ct := ex.ContentType
		if ct == "" {
			ct = "application/json"
		}
		media, ok := asObj(rb["content"])[ct].(obj)
		if !ok {
			return fmt.Errorf("the request body has no media type %s", ct)
		}
		exs := asObj(media["examples"])
		exs[ex.Name] = named(ex.Body)
		media["examples"] = exs
	}
	responses := asObj(op["responses"])
	r, ok := responses[ex.Status].(obj)
	if !ok {
		return fmt.Errorf("the operation has no %s response", ex.Status)
	}
	if ref, ok := r["$ref"].(string); ok {
		// An error response shared as a component: give this operation
		// its own copy to hold the example.
		name := strings.TrimPrefix(ref, "#/components/responses/")
		var e errorResponse
		for _, c := range ov.Errors {
			if c.Name == name {
				e = c
			}
		}
		r = obj{"description": e.Description, "content": obj{"application/json": obj{"schema": obj{"$ref": v3Ref + "Error"}}}}
		if e.Headers != nil {
			r["headers"] = normalize(e.Headers)
		}
		responses[ex.Status] = r
	}
	media, ok := asObj(r["content"])["application/json"].(obj)
	if !ok {
		return fmt.Errorf("the %s response has no JSON body", ex.Status)
	}
	exs := asObj(media["examples"])
	exs[ex.Name] = named(ex.Response)
	media["examples"] = exs
	return nil
}

// convertSchema rewrites a Swagger 2.0 schema for OpenAPI 3.1: references
// point into components, and a reference stands without "type" beside it.
func convertSchema(v any) any {
	switch s := v.(type) {
	case obj:
		out := obj{}
		for k, val := range s {
			out[k] = convertSchema(val)
		}
		if ref, ok := out["$ref"].(string); ok {
			if ref == v2Ref+"rpcStatus" {
				ref = v2Ref + "Error" // the overlay's, with its details
			}
			out["$ref"] = strings.Replace(ref, v2Ref, v3Ref, 1)
			delete(out, "type")
		}
		return out
	case []any:
		out := make([]any, len(s))
		for i, val := range s {
			out[i] = convertSchema(val)
		}
		return out
	}
	return v
}

// prune drops the schemas no operation or other schema refers to (the
// generated ones the overlay replaced, such as google.api.HttpBody).
func prune(doc obj) {
	schemas := asObj(asObj(doc["components"])["schemas"])
	for {
		used := map[string]bool{}
		var walk func(v any, self string)
		walk = func(v any, self string) {
			switch t := v.(type) {
			case obj:
				if ref, ok := t["$ref"].(string); ok {
					if name, ok := strings.CutPrefix(ref, v3Ref); ok && name != self {
						used[name] = true
					}
				}
				for _, val := range t {
					walk(val, self)
				}
			case []any:
				for _, val := range t {
					walk(val, self)
				}
			}
		}
		for k, v := range doc {
			if k != "components" {
				walk(v, "")
			}
		}
		walk(asObj(doc["components"])["responses"], "")
		for name, s := range schemas {
			walk(s, name)
		}
		removed := false
		for name := range schemas {
			if !used[name] {
				delete(schemas, name)
				removed = true
			}
		}
		if !removed {
			return
		}
	}
}

// normalize turns what YAML decoded (map[string]any, ints) into what JSON
// decoding gives, so the two mix.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := obj{}
		for k, val := range t {
			out[k] = normalize(val)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, val := range t {
			out[i] = normalize(val)
		}
		return out
	}
	return v
}

func asObj(v any) obj {
	if o, ok := v.(obj); ok {
		return o
	}
	return obj{}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
