// Package webui serves the operator web console at /console/ on the REST
// listener: its embedded static assets (plain HTML, CSS and ES modules, no
// build step, nothing fetched from elsewhere) and its sign-in session.
//
// # Session
//
// POST /console/session {"key", "tenant"} checks the API key with real
// API calls on the in-process gRPC connection (so the console can do
// exactly what the key can, nothing more) and sets the cookie hw_console:
// the key, its tenant and scope and an expiry, sealed (AES-256-GCM) with the
// server's master keyring, so every server of a cluster sharing the master
// key can open it. The cookie is HttpOnly, SameSite=Strict, Path=/, and
// Secure when the REST listener serves TLS; JavaScript never sees the key
// after sign-in, and the key never appears in a URL.
//
// Wrap turns the cookie into "Authorization: Bearer <key>" for REST calls
// only when the request also carries the header X-Hookwire-Console: 1 and
// no Authorization header of its own. A cross-site page can make a browser
// send the cookie (it is SameSite=Strict, so modern browsers do not) but
// cannot add that header without a CORS preflight, which this server never
// grants; without the header the cookie is ignored and the call is
// unauthenticated. The session endpoints demand the header too.
//
// Everything under /console/ is served with a strict Content-Security-Policy
// (no inline script or style, frame-ancestors 'none'), X-Frame-Options DENY,
// Referrer-Policy no-referrer and X-Content-Type-Options nosniff.
//
// The package owns no state beyond the cookie: it must not read the store
// or bypass the API's authorization.
package webui
