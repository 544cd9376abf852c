package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"
)

// Record values and their checksum.
//
// bbolt checks only its meta pages; a bit flipped inside a data page would
// be served as if it were the record. So every value of a record bucket is
// sealed: the record's bytes followed by the CRC-32C (Castagnoli, computed
// with the CPU's CRC instruction where there is one) of the key and those
// bytes, big-endian:
//
//	value = record || crc32c(key || record)
//
// Covering the key too catches a value that ended up under another key.
// Every read verifies the checksum and fails with ErrCorrupt on a mismatch,
// so damage is reported rather than served. Index buckets hold only keys
// (empty values) and are not sealed; `hookwire store check` verifies them
// against their records. The meta bucket is not sealed either, so that any
// version can read the schema number and refuse a store it does not know.

// sealedBuckets are the buckets whose values are sealed records; the
// others hold only keys (indexes) or the unsealed meta values.
var sealedBuckets = [][]byte{
	bucketTenants, bucketAPIKeys, bucketSubscriptions, bucketEvents,
	bucketDeliveries, bucketAttempts, bucketIdempotency, bucketEventTraces,
	bucketTenantPurges, bucketAudit, bucketAuditByTime, bucketJoinTokens,
	bucketJoinTokenHashes, bucketDeliveryStats, bucketEventTypes, bucketPortalSettings, bucketPortalSessions,
}

// ErrCorrupt means the store file is damaged: a record failed its
// checksum or did not decode, or a page is not what bbolt expects.
var ErrCorrupt = errors.New("the store file is damaged")

// sumSize is the length of a value's checksum.
const sumSize = 4

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// valueSum is the checksum of record stored under key.
func valueSum(key, record []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, record)
}

// seal appends the checksum of record (under key) to record, in place when
// its capacity allows.
func seal(key, record []byte) []byte {
	return binary.BigEndian.AppendUint32(record, valueSum(key, record))
}

// sealCopy is seal into a new slice (record is not changed).
func sealCopy(key, record []byte) []byte {
	out := make([]byte, len(record), len(record)+sumSize)
	copy(out, record)
	return seal(key, out)
}

// openValue verifies a sealed value read from bucket under key and returns
// the record (a slice of v).
func openValue(bucket, key, v []byte) ([]byte, error) {
	if len(v) < sumSize {
		return nil, corruptRecord(bucket, key, fmt.Sprintf("its value is %d bytes, too short to hold a checksum", len(v)))
	}
	rec := v[:len(v)-sumSize]
	if binary.BigEndian.Uint32(v[len(rec):]) != valueSum(key, rec) {
		return nil, corruptRecord(bucket, key, "checksum mismatch")
	}
	return rec, nil
}

// corruptRecord is the error for a damaged record.
func corruptRecord(bucket, key []byte, what string) error {
	return fmt.Errorf("%w: record %s/%s: %s (stop the server and run 'hookwire store check' on the data directory)", ErrCorrupt, bucket, keyText(key), what)
}

// keyText shows a key: as text when it is printable, else as hex (at most
// 48 bytes).
func keyText(k []byte) string {
	printable := len(k) > 0
	for _, c := range k {
		if c < 0x20 || c > 0x7e {
			printable = false
			break
		}
	}
	if printable && len(k) <= 64 {
		return string(k)
	}
	if len(k) > 48 {
		return fmt.Sprintf("%x…", k[:48])
	}
	return fmt.Sprintf("%x", k)
}

// encode marshals m and seals it under key. Deterministic: map entries in
// key order, so applying the same command gives the same bytes everywhere.
func encode(key []byte, m proto.Message) ([]byte, error) {
	size := proto.Size(m)
	buf, err := proto.MarshalOptions{UseCachedSize: true, Deterministic: true}.MarshalAppend(make([]byte, 0, size+sumSize), m)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", m, err)
	}
	return seal(key, buf), nil
}

// decode verifies and unmarshals a value read from bucket under key.
func decode[T proto.Message](bucket, key, v []byte, m T) (T, error) {
	rec, err := openValue(bucket, key, v)
	if err != nil {
		return m, err
	}
	if err := proto.Unmarshal(rec, m); err != nil {
		return m, corruptRecord(bucket, key, fmt.Sprintf("its checksum matches but it does not decode as %T: %v", m, err))
	}
	return m, nil
}

// put encodes m and stores it sealed under k in b.
func put(b *bolt.Bucket, k []byte, m proto.Message) error {
	v, err := encode(k, m)
	if err != nil {
		return err
	}
	return b.Put(k, v)
}

// putRecord stores raw record bytes sealed under k in b.
func putRecord(b *bolt.Bucket, k, record []byte) error {
	return b.Put(k, sealCopy(k, record))
}

// getRecord reads and verifies the record under k in bucket name of tx; nil
// when there is none.
func getRecord(tx *bolt.Tx, name, k []byte) ([]byte, error) {
	b := tx.Bucket(name)
	if b == nil {
		return nil, nil
	}
	v := b.Get(k)
	if v == nil {
		return nil, nil
	}
	return openValue(name, k, v)
}

// getOne reads the message under k in bucket name, or returns ErrNotFound.
func getOne[T proto.Message](s *Store, name, k []byte, m T) (T, error) {
	var out T
	err := s.view(func(tx *bolt.Tx) error {
		got, found, err := getMsg(tx, name, k, m)
		if err == nil && !found {
			err = ErrNotFound
		}
		out = got
		return err
	})
	return out, err
}

// deleteAll deletes keys from b.
func deleteAll(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// getMsg reads, verifies and decodes the record under k in bucket name of
// tx; found is false when there is none.
func getMsg[T proto.Message](tx *bolt.Tx, name, k []byte, m T) (T, bool, error) {
	b := tx.Bucket(name)
	if b == nil {
		return m, false, nil
	}
	v := b.Get(k)
	if v == nil {
		return m, false, nil
	}
	m, err := decode(name, k, v, m)
	return m, err == nil, err
}
