package verify_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/hookwire/hookwire/controlplane/signing"
	"github.com/hookwire/hookwire/controlplane/signing/verify"
)

// A receiver checks a webhook with the subscription's secret. The headers
// here are what Hookwire sends; a real receiver takes them from the request.
func Example() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // from the subscription, e.g. os.Getenv
	body := []byte(`{"type":"order.created","data":{"id":42}}`)
	sent := time.Unix(1700000000, 0)

	// What the sender does (for the example only).
	key, _ := signing.ParseSecret(secret)
	signer, _ := signing.NewSigner(key)
	headers := http.Header{}
	for k, v := range signer.Headers("dlv_01HV6B6X5Y", sent, body) {
		headers.Set(k, v)
	}

	// What the receiver does. WithNow pins the clock for this example; leave
	// it out in real code.
	v, err := verify.New(secret)
	if err != nil {
		fmt.Println("bad key:", err)
		return
	}
	v = v.With(verify.WithNow(func() time.Time { return sent.Add(3 * time.Second) }))

	fmt.Println("authentic:", v.Verify(headers, body) == nil)

	err = v.Verify(headers, []byte(`{"type":"order.created","data":{"id":43}}`))
	fmt.Println("tampered:", errors.Is(err, verify.ErrNoMatchingSignature))

	late := v.With(verify.WithNow(func() time.Time { return sent.Add(time.Hour) }))
	err = late.Verify(headers, body)
	fmt.Println("replayed an hour later:", errors.Is(err, verify.ErrTimestampTooOld))
	// Output:
	// authentic: true
	// tampered: true
	// replayed an hour later: true
}

// Middleware guards an HTTP handler; the handler reads the verified body as
// usual. During a key rotation pass both keys to New.
func ExampleMiddleware() {
	secret, public, _ := signing.GenerateEd25519()
	v, err := verify.New(public)
	if err != nil {
		fmt.Println("bad key:", err)
		return
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Printf("event %s: %s\n", r.Header.Get("webhook-id"), body)
	})
	srv := httptest.NewServer(verify.Middleware(v, handler))
	defer srv.Close()

	// A signed delivery, as Hookwire would send it.
	body := `{"type":"invoice.paid"}`
	key, _ := signing.ParseSigningKey(secret)
	signer, _ := signing.NewKeySigner(key)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
	for k, val := range signer.Headers("dlv_01HV6B6X5Y", time.Now(), []byte(body)) {
		req.Header.Set(k, val)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("status:", resp.StatusCode)

	// The same request without headers is refused before the handler runs.
	resp, err = http.Post(srv.URL, "application/json", strings.NewReader(body))
	if err != nil {
		fmt.Println(err)
		return
	}
	reason, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("status: %d %s", resp.StatusCode, reason)
	// Output:
	// event dlv_01HV6B6X5Y: {"type":"invoice.paid"}
	// status: 200
	// status: 400 missing webhook headers
}
