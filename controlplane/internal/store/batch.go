package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// batchTries bounds how often UpdateSubscriptionBatch reads and decides a
// batch again when a record changed between its read and its write.
const batchTries = 8

// UpdateSubscriptionBatch walks up to limit subscriptions (of every
// tenant) after the store key after (nil: from the first): it reads them,
// lets change decide on a copy of each (change reports whether it changed
// the copy) and stores the changed ones in one write, as PutSubscription
// commands on the revisions read. If one changed meanwhile, the batch is
// read and decided again. It returns the key to pass as after for the
// next batch, nil when the walk is done, and how many records changed.
// Background jobs (re-sealing signing keys under a new master key) use it
// to work in small transactions.
func (s *Store) UpdateSubscriptionBatch(ctx context.Context, after []byte, limit int, change func(*storev1.SubscriptionRecord) (bool, error)) (next []byte, changed int, err error) {
	for range batchTries {
		var recs []*storev1.SubscriptionRecord
		if recs, next, err = s.readSubscriptionBatch(after, limit); err != nil {
			return nil, 0, err
		}
		var cmds []*storev1.Command
		for _, rec := range recs {
			cp := proto.Clone(rec).(*storev1.SubscriptionRecord)
			ok, err := change(cp)
			if err != nil {
				return nil, 0, err
			}
			if ok {
				cmds = append(cmds, &storev1.Command{Kind: &storev1.Command_PutSubscription{PutSubscription: &storev1.PutSubscription{Record: cp}}})
			}
		}
		if len(cmds) == 0 {
			return next, 0, nil
		}
		if _, err = s.Apply(ctx, cmds...); errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
			continue // changed or deleted since read: decide again
		}
		if err != nil {
			return nil, 0, err
		}
		return next, len(cmds), nil
	}
	return nil, 0, fmt.Errorf("update subscriptions: records kept changing while being updated: %w", err)
}

// readSubscriptionBatch reads up to limit records after the key after and
// returns the key to continue after (nil at the end).
func (s *Store) readSubscriptionBatch(after []byte, limit int) (recs []*storev1.SubscriptionRecord, next []byte, err error) {
	err = s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketSubscriptions).Cursor()
		var k, v []byte
		if after == nil {
			k, v = c.First()
		} else {
			k, v = c.Seek(after)
			if k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(recs) < limit; k, v = c.Next() {
			rec, err := decode(bucketSubscriptions, k, v, &storev1.SubscriptionRecord{})
			if err != nil {
				return err
			}
			recs = append(recs, rec)
			next = bytes.Clone(k)
		}
		if k == nil {
			next = nil
		}
		return nil
	})
	return recs, next, err
}
