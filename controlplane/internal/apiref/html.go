package apiref

import (
	"html/template"
	"io"
	"strings"
)

// WriteHTML renders the reference as one self-contained page: inline
// style, no scripts, nothing fetched from elsewhere (operators run
// air-gapped).
func (r *Reference) WriteHTML(w io.Writer) error {
	return page.Execute(w, struct {
		*Reference
		Intro string
	}{r, Intro})
}

var page = template.Must(template.New("api").Funcs(template.FuncMap{
	"anchor": Anchor,
	"paras": func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, "\n\n") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hookwire API reference</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; color: #1d2330; }
nav { position: fixed; top: 0; bottom: 0; left: 0; width: 17rem; overflow-y: auto; padding: 1rem; background: #f4f5f8; border-right: 1px solid #dde; font-size: 13px; }
nav ul { list-style: none; padding-left: .8rem; margin: .2rem 0; }
main { margin-left: 19rem; padding: 1rem 2rem 4rem; max-width: 62rem; }
a { color: #2a55c9; text-decoration: none; } a:hover { text-decoration: underline; }
code, pre { font: 13px ui-monospace, monospace; background: #f1f2f6; border-radius: 3px; }
code { padding: 0 .25em; } pre { padding: .6em .8em; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: 14px; }
th, td { border: 1px solid #dde; padding: .3em .5em; text-align: left; vertical-align: top; }
th { background: #f4f5f8; }
.verb { font-weight: 600; font-family: ui-monospace, monospace; }
.desc p { margin: .3em 0; white-space: pre-line; }
section.rpc { border-top: 1px solid #eee; padding-top: .4rem; }
@media (max-width: 50rem) { nav { position: static; width: auto; } main { margin-left: 0; } }
</style>
</head>
<body>
<nav>
<strong>Hookwire API</strong>
<ul>
<li><a href="#routes">REST routes</a></li>
<li>Services<ul>{{range .Services}}<li><a href="#{{.Name}}">{{.Name}}</a></li>{{end}}</ul></li>
<li><a href="#messages">Messages</a></li>
<li><a href="#enums">Enums</a></li>
<li><a href="/openapi.json">openapi.json</a></li>
</ul>
</nav>
<main>
<h1>Hookwire API reference</h1>
<div class="desc">{{range paras .Intro}}<p>{{.}}</p>{{end}}</div>

<h2 id="routes">REST routes</h2>
<table>
<tr><th>Method</th><th>Path</th><th>RPC</th></tr>
{{range .Routes}}<tr><td class="verb">{{.Verb}}</td><td><code>{{.Path}}</code></td><td><a href="#{{.Method.MethodAnchor}}">{{.Method.Service}}.{{.Method.Name}}</a></td></tr>
{{end}}</table>

<h2>Services</h2>
{{range .Services}}
<h3 id="{{.Name}}">{{.Name}}</h3>
<div class="desc">{{range paras .Description}}<p>{{.}}</p>{{end}}</div>
{{range .Methods}}
<section class="rpc" id="{{.MethodAnchor}}">
<h4>{{.Service}}.{{.Name}}</h4>
<pre>{{.Signature}}</pre>
<ul>
<li>gRPC: <code>{{.GRPC}}</code></li>
{{range .HTTP}}<li>REST: <span class="verb">{{.Verb}}</span> <code>{{.Path}}</code>{{if eq .Body "*"}} (body: the request's fields not in the path){{else if .Body}} (body: <code>{{.Body}}</code>){{end}}</li>
{{else}}<li>REST: none (gRPC only)</li>
{{end}}<li>Request: {{template "type" .Request}}; response: {{template "type" .Response}}</li>
</ul>
<div class="desc">{{range paras .Description}}<p>{{.}}</p>{{end}}</div>
</section>
{{end}}
{{end}}

<h2 id="messages">Messages</h2>
{{range .Messages}}
<h3 id="{{anchor .Name}}">{{.Name}}</h3>
<div class="desc">{{range paras .Description}}<p>{{.}}</p>{{end}}</div>
{{if .Fields}}<table>
<tr><th>Field</th><th>Type</th><th>Description</th></tr>
{{range .Fields}}<tr><td><code>{{.Name}}</code></td><td>{{template "type" .Type}}</td><td class="desc">{{if .Oneof}}<p>One of <code>{{.Oneof}}</code>.</p>{{end}}{{range paras .Description}}<p>{{.}}</p>{{end}}</td></tr>
{{end}}</table>{{else}}<p>No fields.</p>{{end}}
{{end}}

<h2 id="enums">Enums</h2>
{{range .Enums}}
<h3 id="{{anchor .Name}}">{{.Name}}</h3>
<div class="desc">{{range paras .Description}}<p>{{.}}</p>{{end}}</div>
<table>
<tr><th>Value</th><th>Number</th><th>Description</th></tr>
{{range .Values}}<tr><td><code>{{.Name}}</code></td><td>{{.Number}}</td><td class="desc">{{range paras .Description}}<p>{{.}}</p>{{end}}</td></tr>
{{end}}</table>
{{end}}
</main>
</body>
</html>
{{define "type"}}{{if .Local}}<a href="#{{.Anchor}}"><code>{{.Text}}</code></a>{{else}}<code>{{.Text}}</code>{{end}}{{end}}
`))
