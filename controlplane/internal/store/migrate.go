package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Migrating a schema version 1 store (values without checksums).
//
// Every value of the sealed buckets is rewritten with its checksum, in
// transactions of at most migrateBatch records so memory stays bounded on
// a large store. The first transaction sets the schema to 2 and records
// the position in meta "migration" (bucket 0x00 last key); each one moves
// it; the last removes it. An interrupted migration therefore resumes
// where it stopped, and an older hookwire refuses the half-migrated file
// (schema 2) instead of misreading it.

// migrateBatch bounds the records rewritten per transaction.
const migrateBatch = 2000

// migrateV1 seals every record of a version 1 store.
func (s *Store) migrateV1(db *bolt.DB) error {
	started := time.Now()
	s.log.Info("store: migrating to schema version 2 (checksums on records)", "path", s.path)
	err := db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(metaSchema, binary.BigEndian.AppendUint32(nil, schemaVersion)); err != nil {
			return err
		}
		return meta.Put(metaMigration, []byte{0})
	})
	if err != nil {
		return fmt.Errorf("start the migration to schema version %d: %w", schemaVersion, err)
	}
	n, err := s.resumeMigration(db)
	if err != nil {
		return err
	}
	s.log.Info("store: migrated to schema version 2", "path", s.path, "records", n, "took", time.Since(started).Round(time.Millisecond))
	return nil
}

// resumeMigration continues a migration from its recorded position until
// it is done, and returns how many records it sealed.
func (s *Store) resumeMigration(db *bolt.DB) (int, error) {
	total := 0
	for {
		done := false
		n := 0
		err := db.Update(func(tx *bolt.Tx) error {
			var err error
			n, done, err = migrateStep(tx)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("migrate to schema version %d: %w", schemaVersion, err)
		}
		total += n
		if done {
			return total, nil
		}
	}
}

// migrateStep seals up to migrateBatch records after the recorded
// position and moves it; done when nothing is left.
func migrateStep(tx *bolt.Tx) (n int, done bool, err error) {
	meta := tx.Bucket(bucketMeta)
	pos := meta.Get(metaMigration)
	if pos == nil {
		return 0, true, nil
	}
	name, after, _ := bytes.Cut(pos, []byte{0})
	bi := 0
	if len(name) > 0 {
		for i, b := range sealedBuckets {
			if bytes.Equal(b, name) {
				bi = i
				break
			}
		}
	} else {
		after = nil
	}
	for ; bi < len(sealedBuckets); bi, after = bi+1, nil {
		bname := sealedBuckets[bi]
		b := tx.Bucket(bname)
		if b == nil {
			continue
		}
		type kv struct{ k, v []byte }
		var batch []kv
		c := b.Cursor()
		k, v := c.First()
		if after != nil {
			k, v = c.Seek(after)
			if bytes.Equal(k, after) {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(batch) < migrateBatch-n; k, v = c.Next() {
			if v == nil {
				continue // a nested bucket: none are expected
			}
			batch = append(batch, kv{bytes.Clone(k), sealCopy(k, v)})
		}
		for _, e := range batch {
			if err := b.Put(e.k, e.v); err != nil {
				return n, false, err
			}
		}
		n += len(batch)
		if k != nil || n >= migrateBatch {
			last := after
			if len(batch) > 0 {
				last = batch[len(batch)-1].k
			}
			next := append(append(bytes.Clone(bname), 0), last...)
			if last == nil {
				next = append(bytes.Clone(bname), 0)
			}
			return n, false, meta.Put(metaMigration, next)
		}
	}
	return n, true, meta.Delete(metaMigration)
}
