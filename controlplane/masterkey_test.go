package controlplane_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookwire/hookwire/controlplane"
	"github.com/hookwire/hookwire/controlplane/signing/verify"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

// signingWorker keeps creating subscriptions, rotating their secrets and
// publishing to them through one agent, checking every assignment's
// signature against the key the API returned and that every result is
// accepted, until stopped.
type signingWorker struct {
	h     *harness
	agent *fakeAgent
	tick  chan struct{}
	stop  chan struct{}
	done  chan struct{}
	err   error
	// keys by event type: the key each subscription signs with.
	mu   sync.Mutex
	keys map[string]string
	n    int
}

func (w *signingWorker) run() {
	defer close(w.done)
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			return
		default:
		}
		if err := w.once(i); err != nil {
			w.err = fmt.Errorf("iteration %d: %w", i, err)
			return
		}
		w.mu.Lock()
		w.n++
		w.mu.Unlock()
		select {
		case w.tick <- struct{}{}:
		default:
		}
	}
}

func (w *signingWorker) once(i int) error {
	ctx, cancel := context.WithTimeout(authed(context.Background(), adminKey), 10*time.Second)
	defer cancel()
	typ, key, err := w.create(ctx, i)
	if err != nil {
		return err
	}
	return deliverAndVerify(ctx, w.h, w.agent, typ, key)
}

// create makes subscription i (every fourth ed25519, every third rotated
// once) and records the key it signs with.
func (w *signingWorker) create(ctx context.Context, i int) (typ, key string, err error) {
	subs := hookwirev1.NewSubscriptionServiceClient(w.h.conn)
	typ = fmt.Sprintf("live%d", i)
	cfg, _ := structpb.NewStruct(map[string]any{"url": "http://127.0.0.1:1/hook"})
	scheme := hookwirev1.SignatureScheme_SIGNATURE_SCHEME_HMAC_SHA256
	if i%4 == 1 {
		scheme = hookwirev1.SignatureScheme_SIGNATURE_SCHEME_ED25519
	}
	target := &hookwirev1.Target{Transport: "http", Config: cfg}
	if i%5 == 0 { // header values are sealed (and re-sealed) like keys
		target.Headers = map[string]string{"Authorization": fmt.Sprintf("Bearer token-%d", i)}
	}
	sub, err := subs.CreateSubscription(ctx, &hookwirev1.CreateSubscriptionRequest{Tenant: "acme", Subscription: &hookwirev1.Subscription{
		EventTypes: []string{typ}, Target: target, SignatureScheme: scheme}})
	if err != nil {
		return "", "", fmt.Errorf("create: %w", err)
	}
	key = sub.GetSigningSecret() + sub.GetSigningPublicKey()
	if i%3 == 2 { // a rotation seals a key inside an update
		rot, err := subs.RotateSubscriptionSecret(ctx, &hookwirev1.RotateSubscriptionSecretRequest{Tenant: "acme", Id: sub.GetId(), Overlap: durationpb.New(0)})
		if err != nil {
			return "", "", fmt.Errorf("rotate: %w", err)
		}
		key = rot.GetSubscription().GetSigningSecret() + rot.GetSubscription().GetSigningPublicKey()
	}
	w.mu.Lock()
	w.keys[typ] = key
	w.mu.Unlock()
	return typ, key, nil
}

// deliverAndVerify publishes one event of typ, takes its assignment,
// verifies the signature with key and reports success; the result must be
// accepted.
func deliverAndVerify(ctx context.Context, h *harness, agent *fakeAgent, typ, key string) error {
	if _, err := hookwirev1.NewEventServiceClient(h.conn).PublishEvent(ctx, &hookwirev1.PublishEventRequest{
		Tenant: "acme", Event: &hookwirev1.Event{Type: typ, Payload: []byte(`{"n":1}`)}}); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	var a *hookwirev1.Assignment
	for a == nil {
		m, err := agent.stream.Recv()
		if err != nil {
			return fmt.Errorf("recv assignment: %w", err)
		}
		if items := m.GetAssignments().GetItems(); len(items) > 0 {
			if len(items) > 1 {
				return fmt.Errorf("%d assignments for one event", len(items))
			}
			a = items[0]
		}
	}
	if a.GetRequest().GetEventType() != typ {
		return fmt.Errorf("assignment of %s, want %s", a.GetRequest().GetEventType(), typ)
	}
	var i int
	if _, err := fmt.Sscanf(typ, "live%d", &i); err == nil && i%5 == 0 {
		if got, want := a.GetRequest().GetHeaders()["authorization"], fmt.Sprintf("Bearer token-%d", i); got != want {
			return fmt.Errorf("event %s: authorization header %q, want the stored %q", typ, got, want)
		}
	}
	v, err := verify.New(key)
	if err != nil {
		return err
	}
	if err := v.Verify(assignmentHeaders(a), a.GetRequest().GetBody()); err != nil {
		return fmt.Errorf("event %s: signature does not verify with the subscription's key: %w", typ, err)
	}
	if err := agent.stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Results{Results: &hookwirev1.Results{Items: []*hookwirev1.Result{ok(a)}}}}); err != nil {
		return err
	}
	for {
		m, err := agent.stream.Recv()
		if err != nil {
			return fmt.Errorf("recv ack: %w", err)
		}
		if acks := m.GetResultAcks().GetItems(); len(acks) > 0 {
			if !acks[0].GetAccepted() {
				return errors.New("result refused")
			}
			// Grant the spent credit back, as an agent does.
			return agent.stream.Send(&hookwirev1.AgentMessage{Msg: &hookwirev1.AgentMessage_Credit{Credit: &hookwirev1.Credit{Amount: 1}}})
		}
	}
}

// waitTicks waits for n more iterations of the worker.
func (w *signingWorker) waitTicks(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for range n {
		select {
		case <-w.tick:
		case <-w.done:
			t.Fatalf("worker stopped: %v", w.err)
		case <-deadline:
			t.Fatal("worker makes no progress")
		}
	}
}

func masterKeyStatus(t *testing.T, addr string) controlplane.MasterKeyStatus {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz/master-key")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st controlplane.MasterKeyStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz/master-key: %d %v", resp.StatusCode, err)
	}
	return st
}

func TestOnlineMasterKeyRotation(t *testing.T) {
	dir := t.TempDir()
	oldKey := mustMasterKey(t, testMasterKey)
	newKey, err := controlplane.GenerateMasterKeyFile(filepath.Join(t.TempDir(), "new.key"))
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, dir, controlplane.Config{MasterKey: oldKey, AdminAddr: "127.0.0.1:0"})
	h.setup("acme")
	w := &signingWorker{h: h, tick: make(chan struct{}, 100000), stop: make(chan struct{}), done: make(chan struct{}), keys: map[string]string{}}
	// More subscriptions than one re-seal batch, sealed under the old key.
	for i := range 70 {
		if _, _, err := w.create(h.ctx(), 1000+i); err != nil {
			t.Fatal(err)
		}
	}
	if st := masterKeyStatus(t, h.srv.AdminAddr()); st.CurrentID != oldKey.ID() || len(st.PreviousIDs) != 0 || !st.Done {
		t.Fatalf("status at start: %+v", st)
	}

	// Dropping the key everything is sealed under is refused, changing nothing.
	err = h.srv.ReloadMasterKeys(newKey)
	if err == nil || !strings.Contains(err.Error(), oldKey.ID()) || !strings.Contains(err.Error(), "--previous-master-key-file") {
		t.Fatalf("reload without the old key: %v", err)
	}
	if st := masterKeyStatus(t, h.srv.AdminAddr()); st.CurrentID != oldKey.ID() {
		t.Fatalf("a refused reload changed the keys: %+v", st)
	}

	w.agent, _ = h.connectAgent("agent-1", 10)
	go w.run()
	t.Cleanup(func() {
		select {
		case <-w.stop:
		default:
			close(w.stop)
		}
		<-w.done
	})
	w.waitTicks(t, 5)

	// Rotate while subscriptions are created, rotated and signed.
	if err := h.srv.ReloadMasterKeys(newKey, oldKey); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.srv.MasterKeyRotationDone():
	case <-w.done:
		t.Fatalf("worker stopped: %v", w.err)
	case <-time.After(30 * time.Second):
		t.Fatal("re-seal did not finish")
	}
	if err := h.srv.MasterKeyRotationErr(); err != nil {
		t.Fatal(err)
	}
	st := masterKeyStatus(t, h.srv.AdminAddr())
	if st.CurrentID != newKey.ID() || len(st.PreviousIDs) != 1 || st.PreviousIDs[0] != oldKey.ID() || !st.Done || st.Resealing || st.Keys < 70 || st.Reloads != 1 {
		t.Fatalf("status after the re-seal: %+v", st)
	}
	m := scrape(t, h.srv.AdminAddr())
	if m("hookwire_master_key_previous_keys") != 1 || m("hookwire_master_key_reseal_in_progress") != 0 || m("hookwire_master_key_resealed_keys_total") < 70 {
		t.Fatal("master key metrics after the re-seal are wrong")
	}
	w.waitTicks(t, 5)

	// The old key can now be dropped, still under load.
	if err := h.srv.ReloadMasterKeys(newKey); err != nil {
		t.Fatalf("drop the old key after the re-seal: %v", err)
	}
	if m := scrape(t, h.srv.AdminAddr()); m("hookwire_master_key_previous_keys") != 0 {
		t.Fatal("the old key is still counted")
	}
	w.waitTicks(t, 5)
	close(w.stop)
	<-w.done
	if w.err != nil {
		t.Fatalf("a delivery failed during the rotation: %v", w.err)
	}

	// The subscriptions from before the rotation still sign with their keys.
	ctx := h.ctx()
	for _, typ := range []string{"live1000", "live1001", "live1069"} {
		if err := deliverAndVerify(ctx, h, w.agent, typ, w.keys[typ]); err != nil {
			t.Fatalf("after the rotation: %v", err)
		}
	}
	h.stop()

	// Every key is under the new master key: it alone opens them all.
	h = start(t, dir, controlplane.Config{MasterKey: newKey})
	agent, _ := h.connectAgent("agent-1", 10)
	w.mu.Lock()
	last := fmt.Sprintf("live%d", w.n-1)
	keys := []string{"live1000", "live1001", "live2", last}
	w.mu.Unlock()
	for _, typ := range keys {
		if err := deliverAndVerify(h.ctx(), h, agent, typ, w.keys[typ]); err != nil {
			t.Fatalf("restart with the new key only: %v", err)
		}
	}
}
