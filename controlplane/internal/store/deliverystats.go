package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	bolt "go.etcd.io/bbolt"
)

// Delivery statistics (issue 14): the bucket delivery_stats holds one
// hookwire.store.v1.StatsMinute per (subscription, minute) with activity,
// under tenant 0x00 sub ulid(16) minute(u32, minutes since the Unix
// epoch). The leader counts in memory and writes the counts of the last
// few seconds with one RecordStats command (never one write per attempt);
// PurgeStats drops the minutes older than the retention; deleting a
// subscription deletes its statistics in the same write. The bucket is
// created by the first RecordStats (a store written before it has none).

var bucketDeliveryStats = []byte("delivery_stats")

// statsKeyLen is the length of a key's sub and minute part.
const statsKeyLen = 16 + 4

func statsKey(tenant string, sub ids.ID, minute int64) []byte {
	return binary.BigEndian.AppendUint32(tenantKey(tenant, sub[:]), uint32(minute))
}

// splitStatsKey returns the subscription and minute of a key under a
// tenant's prefix.
func splitStatsKey(prefix, k []byte) (sub ids.ID, minute int64, ok bool) {
	rest := k[len(prefix):]
	if len(rest) != statsKeyLen {
		return sub, 0, false
	}
	copy(sub[:], rest[:16])
	return sub, int64(binary.BigEndian.Uint32(rest[16:])), true
}

// MergeStatsMinute adds src's counts to dst; src's queue sample, if it has
// one, replaces dst's.
func MergeStatsMinute(dst, src *storev1.StatsMinute) {
	dst.Created += src.GetCreated()
	dst.Succeeded += src.GetSucceeded()
	dst.Retrying += src.GetRetrying()
	dst.Dead += src.GetDead()
	dst.Outcomes = addCounts(dst.Outcomes, src.GetOutcomes())
	dst.Latency = addCounts(dst.Latency, src.GetLatency())
	if src.GetQueueSampled() {
		dst.QueueSampled, dst.WaitingRetry, dst.WaitingAgent = true, src.GetWaitingRetry(), src.GetWaitingAgent()
	}
}

func addCounts(dst, src []int64) []int64 {
	for len(dst) < len(src) {
		dst = append(dst, 0)
	}
	for i, v := range src {
		dst[i] += v
	}
	return dst
}

// RecordStats adds per-minute statistics (a RecordStats command).
func (s *Store) RecordStats(ctx context.Context, deltas []*storev1.StatsDelta) error {
	if len(deltas) == 0 {
		return nil
	}
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_RecordStats{RecordStats: &storev1.RecordStats{Deltas: deltas}}})
	return err
}

func applyRecordStats(tx *bolt.Tx, c *storev1.RecordStats) error {
	b, err := tx.CreateBucketIfNotExists(bucketDeliveryStats)
	if err != nil {
		return err
	}
	subs := tx.Bucket(bucketSubscriptions)
	for _, d := range c.GetDeltas() {
		sid, err := commandID("subscription id", d.GetSubscriptionId())
		if err != nil {
			return err
		}
		if subs.Get(tenantKey(d.GetTenant(), sid[:])) == nil {
			continue // deleted since: its statistics went with it
		}
		k := statsKey(d.GetTenant(), sid, d.GetMinute())
		m := &storev1.StatsMinute{}
		if v := b.Get(k); v != nil {
			if m, err = decode(bucketDeliveryStats, k, v, m); err != nil {
				return err
			}
		}
		MergeStatsMinute(m, d.GetAdd())
		if err := put(b, k, m); err != nil {
			return err
		}
	}
	return nil
}

// deleteSubStats deletes a subscription's statistics (at most the
// retention's minutes: one write).
func deleteSubStats(tx *bolt.Tx, tenant string, sub ids.ID) error {
	b := tx.Bucket(bucketDeliveryStats)
	if b == nil {
		return nil
	}
	_, err := deletePrefix(b, tenantKey(tenant, sub[:]), int(^uint(0)>>1))
	return err
}

// StatsMinutes calls fn with the stored statistics of a tenant's
// subscriptions (or of sub only, when set) for the minutes in [from, to),
// subscription by subscription, each in minute order. m is fn's to keep.
func (s *Store) StatsMinutes(tenant string, sub *ids.ID, from, to int64, fn func(sub ids.ID, minute int64, m *storev1.StatsMinute)) error {
	prefix := tenantPrefix(tenant)
	return s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDeliveryStats)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var k, v []byte
		if sub != nil {
			k, v = c.Seek(statsKey(tenant, *sub, from))
		} else {
			k, v = c.Seek(prefix)
		}
		for k != nil && bytes.HasPrefix(k, prefix) {
			id, minute, ok := splitStatsKey(prefix, k)
			if !ok {
				return fmt.Errorf("%w: delivery_stats key %x is malformed", ErrCorrupt, k)
			}
			if sub != nil && id != *sub {
				return nil
			}
			switch {
			case minute < from:
				k, v = c.Seek(statsKey(tenant, id, from))
				continue
			case minute >= to:
				if sub != nil {
					return nil
				}
				next, ok := nextID(id)
				if !ok {
					return nil
				}
				k, v = c.Seek(tenantKey(tenant, next[:]))
				continue
			}
			m, err := decode(bucketDeliveryStats, k, v, &storev1.StatsMinute{})
			if err != nil {
				return err
			}
			fn(id, minute, m)
			k, v = c.Next()
		}
		return nil
	})
}

// nextID is the id after id in key order (false: id is the last).
func nextID(id ids.ID) (ids.ID, bool) {
	for i := len(id) - 1; i >= 0; i-- {
		id[i]++
		if id[i] != 0 {
			return id, true
		}
	}
	return id, false
}

// PurgeStats removes the statistics of minutes before beforeMinute, in
// steps of batch keys, and returns how many minutes it removed.
func (s *Store) PurgeStats(ctx context.Context, beforeMinute int64, batch int) (int, error) {
	var after []byte
	total := 0
	for ctx.Err() == nil {
		c := &storev1.PurgeStats{BeforeMinute: beforeMinute, After: after, Batch: uint32(max(batch, 1))}
		r, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PurgeStats{PurgeStats: c}})
		if err != nil {
			return total, err
		}
		total += r.StatsPurged
		if r.PurgedLast == nil {
			return total, nil
		}
		after = r.PurgedLast
	}
	return total, ctx.Err()
}

// applyPurgeStats deletes the minutes before the cutoff of the
// subscriptions after cmd.after, until batch keys are deleted or
// subscriptions passed; it returns the last key examined (nil: done).
func applyPurgeStats(tx *bolt.Tx, cmd *storev1.PurgeStats) (n int, last []byte, err error) {
	b := tx.Bucket(bucketDeliveryStats)
	if b == nil {
		return 0, nil, nil
	}
	batch := max(int(cmd.GetBatch()), 1)
	c := b.Cursor()
	var k []byte
	if after := cmd.GetAfter(); len(after) > 0 {
		k, _ = c.Seek(after)
		if bytes.Equal(k, after) {
			k, _ = c.Next()
		}
	} else {
		k, _ = c.First()
	}
	var doomed [][]byte
	var prev []byte // the last key examined
	for steps := 0; k != nil; steps++ {
		if steps >= batch {
			last = prev
			break
		}
		if len(k) < statsKeyLen {
			return 0, nil, fmt.Errorf("%w: delivery_stats key %x is malformed", ErrCorrupt, k)
		}
		prev = bytes.Clone(k)
		minute := int64(binary.BigEndian.Uint32(k[len(k)-4:]))
		if minute < cmd.GetBeforeMinute() {
			doomed = append(doomed, prev)
			k, _ = c.Next()
			continue
		}
		// The rest of this subscription's minutes are kept: on to the next.
		k, _ = c.Seek(append(prev[:len(prev)-4:len(prev)-4], 0xff, 0xff, 0xff, 0xff, 0xff))
	}
	if err := deleteAll(b, doomed); err != nil {
		return 0, nil, err
	}
	return len(doomed), last, nil
}
