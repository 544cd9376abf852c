package sdk_test

import (
	"context"
	"math"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	transportv1 "github.com/hookwire/hookwire/gen/go/hookwire/transport/v1"
	"github.com/hookwire/hookwire/plugins/sdk"
	"github.com/hookwire/hookwire/plugins/sdk/vtcodec"
)

// fullRequest and fullResult set every field (checked against the message
// descriptors), with a target config holding every kind of Struct value.
func fullRequest(t *testing.T) *transportv1.DeliveryRequest {
	t.Helper()
	cfg, err := structpb.NewStruct(map[string]any{
		"url":     "https://example.com/hooks",
		"headers": map[string]any{"X-Team": "payments", "X-Empty": ""},
		"list":    []any{1.5, "two", true, nil, map[string]any{"deep": []any{}}},
		"zero":    0.0,
		"false":   false,
		"inf":     math.Inf(-1),
		"":        "empty key",
	})
	if err != nil {
		t.Fatal(err)
	}
	req := &transportv1.DeliveryRequest{
		Config:      cfg,
		Body:        []byte(`{"sent":1,"seq":2,"ü":"\u00fc"}`),
		ContentType: "application/json",
		Headers: map[string]string{
			"webhook-id":        "dlv_01",
			"webhook-timestamp": "1700000000",
			"webhook-signature": "v1,abc v1,def",
			"x-empty":           "",
		},
		Timeout:     durationpb.New(7*time.Second + 5),
		DeliveryId:  "dlv_01",
		EventType:   "order.créé",
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Tracestate:  "vendor=a",
	}
	allSet(t, req)
	return req
}

func fullResult(t *testing.T) *transportv1.DeliveryResult {
	t.Helper()
	res := &transportv1.DeliveryResult{
		Outcome:         transportv1.Outcome_OUTCOME_THROTTLED,
		StatusCode:      429,
		ResponseHeaders: map[string]string{"retry-after": "3", "content-type": "text/plain; charset=utf-8"},
		ResponseBody:    []byte("slow down \x00\xff"),
		Error:           "target answered 429 Too Many Requests",
		Latency:         durationpb.New(1234 * time.Microsecond),
		RetryAfter:      durationpb.New(3 * time.Second),
	}
	allSet(t, res)
	return res
}

func allSet(t *testing.T, m proto.Message) {
	t.Helper()
	fields := m.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if !m.ProtoReflect().Has(fields.Get(i)) {
			t.Fatalf("sample %s leaves field %s unset; set it here", m.ProtoReflect().Descriptor().Name(), fields.Get(i).Name())
		}
	}
}

// recorder is a transport that keeps what it received and the stream's
// content-type, and answers with a fixed result.
type recorder struct {
	res         *transportv1.DeliveryResult
	got         chan *transportv1.DeliveryRequest
	contentType chan string
}

func newRecorder(res *transportv1.DeliveryResult) *recorder {
	return &recorder{res: res, got: make(chan *transportv1.DeliveryRequest, 1), contentType: make(chan string, 1)}
}

func (r *recorder) Describe(context.Context) (sdk.Info, error) {
	return sdk.Info{Name: "recorder"}, nil
}

func (r *recorder) Validate(context.Context, *structpb.Struct) ([]string, error) { return nil, nil }

func (r *recorder) Deliver(ctx context.Context, req *transportv1.DeliveryRequest) *transportv1.DeliveryResult {
	md, _ := metadata.FromIncomingContext(ctx)
	r.contentType <- firstOf(md.Get("content-type"))
	r.got <- req
	return r.res
}

func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// deliverOnce sends req through c and checks what the plugin received and
// what came back.
func deliverOnce(t *testing.T, c *sdk.Client, r *recorder, req *transportv1.DeliveryRequest) (contentType string) {
	t.Helper()
	got := c.Deliver(context.Background(), req)
	if !proto.Equal(got, r.res) {
		t.Errorf("host got result\n %v\nwant %v", got, r.res)
	}
	select {
	case in := <-r.got:
		if !proto.Equal(in, req) {
			t.Errorf("plugin got request\n %v\nwant %v", in, req)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the plugin never received the request")
	}
	return <-r.contentType
}

// TestDeliverStreamUsesVTCodec: the host asks for the vtproto codec on the
// Deliver stream, the plugin's server (go-plugin's, as in production)
// picks it by content-subtype, and fully populated requests and results
// cross unchanged.
func TestDeliverStreamUsesVTCodec(t *testing.T) {
	r := newRecorder(fullResult(t))
	c, _ := connect(t, r)
	if ct := deliverOnce(t, c, r, fullRequest(t)); ct != "application/grpc+"+vtcodec.Name {
		t.Errorf("Deliver stream content-type = %q, want application/grpc+%s", ct, vtcodec.Name)
	}
	if _, ok := encoding.GetCodecV2(vtcodec.Name).(vtcodec.Codec); !ok {
		t.Errorf("a process importing the SDK has %T registered as %q, want vtcodec.Codec (plugins pick the codec from this registry)", encoding.GetCodecV2(vtcodec.Name), vtcodec.Name)
	}
}

// TestDeliverStreamToStandardCodecPlugin stands for a plugin built with an
// SDK that predates the vtproto codec: its server decodes and encodes with
// the standard proto codec whatever the content-subtype says, and the
// deliveries still cross unchanged because the bytes are the same.
func TestDeliverStreamToStandardCodecPlugin(t *testing.T) {
	r := newRecorder(fullResult(t))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(encoding.GetCodecV2(grpcproto.Name)))
	transportv1.RegisterTransportServiceServer(srv, sdk.NewServer(r))
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := sdk.NewClient(context.Background(), conn)
	t.Cleanup(func() {
		_ = c.Close()
		_ = conn.Close()
		srv.Stop()
		<-served
	})
	deliverOnce(t, c, r, fullRequest(t))
}
