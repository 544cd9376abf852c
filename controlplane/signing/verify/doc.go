// Package verify checks the signatures of webhooks sent by Hookwire, for
// the services that receive them. It implements the receiving side of the
// Standard Webhooks specification and depends only on the Go standard
// library and Hookwire's signing package.
//
// # What Hookwire sends
//
// Every delivery carries three headers:
//
//	webhook-id:        dlv_01J...              stable across retries; use it to de-duplicate
//	webhook-timestamp: 1700000000              Unix seconds when this attempt was signed
//	webhook-signature: v1,<base64> v1a,<base64> one or more signatures, space-separated
//
// The signed content is "{webhook-id}.{webhook-timestamp}.{raw body}". A
// "v1" signature is HMAC-SHA256 with a shared secret ("whsec_..."); a "v1a"
// signature is ed25519, checked with a public key ("whpk_..."). While a key
// is rotated, Hookwire signs with the old and the new key, so a receiver
// that knows either accepts the request.
//
// # Usage
//
// Give New the key shown when the subscription was created (and, during a
// rotation, the new one as well), then wrap the webhook handler:
//
//	v, err := verify.New(os.Getenv("HOOKWIRE_WEBHOOK_SECRET"))
//	if err != nil {
//		log.Fatal(err) // says what is wrong with the key, never prints it
//	}
//	http.Handle("/webhooks", verify.Middleware(v, handler))
//
// The middleware reads the body (up to 1 MiB by default, see
// WithMaxBodyBytes), verifies it, and hands the untouched body to handler.
// Rejected requests get 400 (missing or malformed headers), 401 (stale
// timestamp or no matching signature) or 413 (body too large).
//
// Frameworks that read the body themselves can call Verifier.Verify with
// the headers and the raw body bytes. Verify before parsing: decoding JSON
// and encoding it again changes the bytes and breaks the signature.
//
// # Replays and duplicates
//
// Requests whose timestamp is more than five minutes (WithTolerance) away
// from the local clock are refused, which bounds replays; keep the clock
// synchronised (NTP). Hookwire delivers at least once, so the same
// webhook-id may arrive more than once: record the ids you have processed
// and skip repeats.
//
// # Errors
//
// Verify's errors wrap one of ErrMissingHeaders, ErrMalformedHeader,
// ErrTimestampTooOld, ErrTimestampTooNew and ErrNoMatchingSignature; test
// them with errors.Is. Their text explains the likely cause and never
// contains key material.
package verify
