package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// Page layout and memory.
//
// Fill. bbolt splits a full page into pages filled to Bucket.FillPercent
// (default 50%). Keys of the buckets below only grow (ULIDs, or a prefix
// then a ULID or due time), so new entries land at the end of a page that
// will not see inserts in its middle again: filled to 50% they would keep
// half of every page empty for good, doubling the file (about 1.6 KB per
// pending delivery with a 256-byte payload, against 0.8 KB of data).
//
// Mapping. bbolt reads the file through a shared, read-only mmap. Opening
// with NoFreelistSync rebuilds the freelist by visiting every page, and
// reading deliveries through a backlog visits most of them again; each
// page visited stays mapped and counts in the process's RSS, so a 1 GB
// store showed as 1 GB of RSS after a restart although it is only page
// cache the kernel can reclaim. The store therefore drops its mapped pages
// (madvise MADV_DONTNEED) after opening and then periodically: for a
// shared file mapping this only removes the page-table entries, the pages
// stay in the page cache, and the next read maps them again with a minor
// fault. It runs inside a read transaction, which holds bbolt's mmap lock,
// so the mapping cannot be replaced meanwhile.

// appendFillPercent is the fill of the buckets whose keys only grow.
const appendFillPercent = 0.95

var appendBuckets = [][]byte{
	bucketEvents, bucketDeliveries, bucketDeliveriesByTenant,
	bucketDeliveriesByEvent, bucketDeliveriesBySub, bucketDue, bucketEventTraces,
}

// setFillPercent applies the fill of the append-only buckets to a write
// transaction (bbolt keeps the setting per transaction).
func setFillPercent(tx *bolt.Tx) {
	for _, name := range appendBuckets {
		if b := tx.Bucket(name); b != nil {
			b.FillPercent = appendFillPercent
		}
	}
}

// Mapping drops: only for files at least unmapMinSize large, every
// unmapInterval.
const (
	unmapMinSize  = 64 << 20
	unmapInterval = 5 * time.Second
)

// dropMappedPages removes the database's pages from this process's
// mapping (see above) when the file is large enough to matter.
func (s *Store) dropMappedPages() {
	_ = s.view(func(tx *bolt.Tx) error {
		if size := tx.Size(); size >= unmapMinSize {
			if err := dropMapping(tx.DB().Info().Data, size); err != nil {
				s.log.Debug("store: dropping mapped pages failed", "err", err)
			}
		}
		return nil
	})
}

// unmapLoop drops the mapped pages every unmapInterval until quit.
func (s *Store) unmapLoop() {
	defer close(s.unmapDone)
	s.dropMappedPages()
	t := time.NewTicker(unmapInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.dropMappedPages()
		case <-s.quit:
			return
		}
	}
}
