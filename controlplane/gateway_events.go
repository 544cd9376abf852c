package controlplane

import (
	"bytes"
	"encoding/json"

	"github.com/hookwire/hookwire/controlplane/internal/filter"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	"google.golang.org/protobuf/proto"
)

// marshalEvents writes the responses of GetEvent and ListEvents (ok false
// for others): their events show a JSON payload as the JSON value itself,
// byte for byte as it was published (the way a REST publish takes it),
// rather than as base64. Other payloads stay base64, as protojson writes
// bytes.
func (m *eventMarshaler) marshalEvents(v any) (b []byte, ok bool, err error) {
	switch resp := v.(type) {
	case *hookwirev1.GetEventResponse:
		rest := proto.CloneOf(resp)
		rest.Event = nil
		b, err = m.withEvents(rest, "event", false, resp.GetEvent())
		return b, true, err
	case *hookwirev1.ListEventsResponse:
		rest := proto.CloneOf(resp)
		rest.Events = nil
		b, err = m.withEvents(rest, "events", true, resp.GetEvents()...)
		return b, true, err
	}
	return nil, false, nil
}

// withEvents marshals rest and adds the member name holding events (a
// list when list is set, else the one event, if any) in front.
func (m *eventMarshaler) withEvents(rest proto.Message, name string, list bool, events ...*hookwirev1.Event) ([]byte, error) {
	tail, err := m.marshalWithout(rest, name)
	if err != nil {
		return nil, err
	}
	if !list && events[0] == nil {
		return tail, nil
	}
	var b bytes.Buffer
	b.WriteString(`{"` + name + `":`)
	if list {
		b.WriteByte('[')
	}
	for i, ev := range events {
		if i > 0 {
			b.WriteByte(',')
		}
		data, err := m.event(ev)
		if err != nil {
			return nil, err
		}
		b.Write(data)
	}
	if list {
		b.WriteByte(']')
	}
	return appendMembers(&b, tail), nil
}

// event marshals one event, its payload as JSON when it is JSON.
func (m *eventMarshaler) event(ev *hookwirev1.Event) ([]byte, error) {
	payload := ev.GetPayload()
	if len(payload) == 0 || !filter.IsJSONContentType(ev.GetContentType()) || !json.Valid(payload) {
		return m.JSONPb.Marshal(ev)
	}
	rest := proto.CloneOf(ev)
	rest.Payload = nil
	tail, err := m.marshalMessage(rest)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`{"payload":`)
	b.Write(payload)
	return appendMembers(&b, tail), nil
}

// appendMembers closes the object open in b with the members of the JSON
// object obj.
func appendMembers(b *bytes.Buffer, obj []byte) []byte {
	inner := bytes.TrimSpace(obj)
	inner = bytes.TrimSpace(inner[1 : len(inner)-1]) // without { and }
	if len(inner) > 0 {
		b.WriteByte(',')
		b.Write(inner)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// RESTJSON is m as the REST API writes it: protojson with the proto field
// names, except that events show JSON payloads as JSON values (see
// eventMarshaler.Marshal). The CLI prints events with it, so that its
// -o json matches the REST answer.
func RESTJSON(m proto.Message) ([]byte, error) {
	return restMarshaler().Marshal(m)
}
