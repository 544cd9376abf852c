package store

import (
	"bytes"
	"context"

	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
)

// Join tokens live in two buckets created on first use: the token
// descriptions (JoinToken without its value) and, apart, the SHA-256 of
// each token's value, both keyed by token id.
var (
	bucketJoinTokens      = []byte("join_tokens")
	bucketJoinTokenHashes = []byte("join_token_hashes")
)

// PutJoinToken stores a join token description and its value's hash (a
// PutJoinToken command), with audit (if set) in the same write.
func (s *Store) PutJoinToken(ctx context.Context, t *hookwirev1.JoinToken, hash []byte, audit *hookwirev1.AuditEvent) error {
	_, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_PutJoinToken{PutJoinToken: &storev1.PutJoinToken{Token: t, Hash: hash, Audit: audit}}})
	return err
}

// GetJoinToken returns a join token and its value's hash, or ErrNotFound.
func (s *Store) GetJoinToken(id string) (*hookwirev1.JoinToken, []byte, error) {
	var (
		t    *hookwirev1.JoinToken
		hash []byte
	)
	err := s.view(func(tx *bolt.Tx) error {
		b, h := tx.Bucket(bucketJoinTokens), tx.Bucket(bucketJoinTokenHashes)
		if b == nil || h == nil {
			return ErrNotFound
		}
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		if t, err = decode(bucketJoinTokens, []byte(id), v, &hookwirev1.JoinToken{}); err != nil {
			return err
		}
		stored, err := getRecord(tx, bucketJoinTokenHashes, []byte(id))
		if err != nil {
			return err
		}
		hash = bytes.Clone(stored)
		return nil
	})
	return t, hash, err
}

// ListJoinTokens returns every join token description, in id order.
func (s *Store) ListJoinTokens() ([]*hookwirev1.JoinToken, error) {
	var out []*hookwirev1.JoinToken
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJoinTokens)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			t, err := decode(bucketJoinTokens, k, v, &hookwirev1.JoinToken{})
			if err != nil {
				return err
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

// RevokeJoinToken marks a join token revoked (a RevokeJoinToken command),
// with audit (if set) in the same write, and returns it, or ErrNotFound.
func (s *Store) RevokeJoinToken(ctx context.Context, id string, audit *hookwirev1.AuditEvent) (*hookwirev1.JoinToken, error) {
	r, err := s.applyOne(ctx, &storev1.Command{Kind: &storev1.Command_RevokeJoinToken{RevokeJoinToken: &storev1.RevokeJoinToken{Id: id, Audit: audit}}})
	return r.JoinToken, err
}
