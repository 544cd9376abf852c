package store

import (
	"bytes"
	"context"

	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	bolt "go.etcd.io/bbolt"
)

// UpdateSubscriptionBatch walks up to limit subscriptions (of every
// tenant) after the store key after (nil: from the first) in one write and
// stores those change reports as changed. It returns the key to pass as
// after for the next batch, nil when the walk is done, and how many
// records changed. Background jobs (re-sealing signing keys under a new
// master key) use it to work in small transactions.
func (s *Store) UpdateSubscriptionBatch(ctx context.Context, after []byte, limit int, change func(*storev1.SubscriptionRecord) (bool, error)) (next []byte, changed int, err error) {
	err = s.update(ctx, func(tx *bolt.Tx) error {
		next, changed = nil, 0
		b := tx.Bucket(bucketSubscriptions)
		c := b.Cursor()
		var k, v []byte
		if after == nil {
			k, v = c.First()
		} else {
			k, v = c.Seek(after)
			if k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		type put1 struct {
			k   []byte
			rec *storev1.SubscriptionRecord
		}
		var puts []put1
		n := 0
		for ; k != nil && n < limit; k, v = c.Next() {
			n++
			rec, err := decode(bucketSubscriptions, k, v, &storev1.SubscriptionRecord{})
			if err != nil {
				return err
			}
			ok, err := change(rec)
			if err != nil {
				return err
			}
			if ok {
				puts = append(puts, put1{bytes.Clone(k), rec})
			}
			next = bytes.Clone(k)
		}
		if k == nil {
			next = nil
		}
		for _, p := range puts {
			if err := put(b, p.k, p.rec); err != nil {
				return err
			}
		}
		changed = len(puts)
		return nil
	})
	return next, changed, err
}
