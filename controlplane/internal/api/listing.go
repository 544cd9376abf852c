package api

import (
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// timeRange reads a list filter's start_time and end_time (zero when
// unset) and refuses a range that ends before it starts.
func timeRange(start, end *timestamppb.Timestamp) (from, to time.Time, err error) {
	if start != nil {
		from = start.AsTime()
	}
	if end != nil {
		to = end.AsTime()
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return from, to, status.Error(codes.InvalidArgument, "start_time must be before end_time")
	}
	return from, to, nil
}

// pageBefore reads a page token: the id (with prefix) the previous page
// ended at; nil for the first page.
func pageBefore(token, prefix string) (*ids.ID, error) {
	if token == "" {
		return nil, nil
	}
	id, err := ids.Parse(prefix, token)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "page_token: %v; pass the next_page_token of the previous page", err)
	}
	return &id, nil
}
