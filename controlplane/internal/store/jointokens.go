package store

import (
	"bytes"
	"context"
	"fmt"

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

// PutJoinToken stores a join token description and its value's hash.
func (s *Store) PutJoinToken(ctx context.Context, t *hookwirev1.JoinToken, hash []byte) error {
	v, err := encode([]byte(t.GetId()), t)
	if err != nil {
		return fmt.Errorf("encode join token: %w", err)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketJoinTokens)
		if err != nil {
			return err
		}
		h, err := tx.CreateBucketIfNotExists(bucketJoinTokenHashes)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(t.GetId()), v); err != nil {
			return err
		}
		return putRecord(h, []byte(t.GetId()), hash)
	})
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

// RevokeJoinToken marks a join token revoked and returns it, or
// ErrNotFound.
func (s *Store) RevokeJoinToken(ctx context.Context, id string) (*hookwirev1.JoinToken, error) {
	var t *hookwirev1.JoinToken
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketJoinTokens)
		if b == nil {
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
		t.Revoked = true
		return put(b, []byte(id), t)
	})
	return t, err
}
