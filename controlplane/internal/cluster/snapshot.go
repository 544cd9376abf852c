package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// A saved snapshot (operator snapshot save) is a tar archive, like
// Consul's: meta.json (SnapshotInfo), state.bin (the raft snapshot as this
// package stores it: header, then the FSM's bytes) and SHA256SUMS over
// both, so a truncated or edited file is refused before raft sees it.
const (
	archiveMeta  = "meta.json"
	archiveState = "state.bin"
	archiveSums  = "SHA256SUMS"

	archiveVersion = 1
)

// SnapshotInfo describes a saved snapshot.
type SnapshotInfo struct {
	Version int       `json:"version"`
	NodeID  string    `json:"node_id"` // the server that wrote it
	Index   uint64    `json:"index"`   // raft index the state is at
	Term    uint64    `json:"term"`
	Size    int64     `json:"size"` // bytes of state.bin
	Created time.Time `json:"created"`
}

// SnapshotSave writes a consistent snapshot of the FSM to w (operator
// snapshot save: the backup). It asks raft for a fresh snapshot, which
// also lets raft truncate its log, or uses the newest stored one when
// nothing was applied since. It works on any server and reports that
// server's state: callers that want the leader's forward to it.
func (n *Node) SnapshotSave(ctx context.Context, w io.Writer) (SnapshotInfo, error) {
	var (
		meta *raft.SnapshotMeta
		rc   io.ReadCloser
	)
	f := n.raft.Snapshot()
	err := n.wait(ctx, f)
	switch {
	case errors.Is(err, raft.ErrNothingNewToSnapshot):
		list, lerr := n.stores.snaps.List()
		if lerr != nil {
			return SnapshotInfo{}, fmt.Errorf("list raft snapshots: %w", lerr)
		}
		if len(list) == 0 {
			return SnapshotInfo{}, errors.New("nothing to snapshot yet: this server has applied no entry")
		}
		meta, rc, err = n.stores.snaps.Open(list[0].ID)
	case err == nil:
		meta, rc, err = f.Open()
	}
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot: %w", n.translate(err))
	}
	defer rc.Close()
	info := SnapshotInfo{Version: archiveVersion, NodeID: n.id, Index: meta.Index, Term: meta.Term, Size: meta.Size, Created: time.Now().UTC()}
	if err := writeArchive(ctx, w, info, rc); err != nil {
		return SnapshotInfo{}, err
	}
	return info, nil
}

// ctxWriter stops a long copy when ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

func writeArchive(ctx context.Context, w io.Writer, info SnapshotInfo, state io.Reader) error {
	tw := tar.NewWriter(ctxWriter{ctx, w})
	metaJSON, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	sums := &strings.Builder{}
	put := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: size, ModTime: info.Created, Typeflag: tar.TypeReg}); err != nil {
			return fmt.Errorf("write snapshot archive: %w", err)
		}
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(tw, h), r); err != nil {
			return fmt.Errorf("write snapshot archive %s: %w", name, err)
		}
		fmt.Fprintf(sums, "%x  %s\n", h.Sum(nil), name)
		return nil
	}
	if err := put(archiveMeta, int64(len(metaJSON)), bytes.NewReader(metaJSON)); err != nil {
		return err
	}
	if err := put(archiveState, info.Size, state); err != nil {
		return err
	}
	if err := put(archiveSums, int64(sums.Len()), strings.NewReader(sums.String())); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write snapshot archive: %w", err)
	}
	return nil
}

// SnapshotRestore replaces the cluster's state with a saved snapshot
// (operator snapshot restore). The archive is checked in full first; raft
// then installs it on this node and, through the hole it leaves in the
// log, on every follower. The cluster keeps its current membership. Leader
// only. In-flight writes fail with an aborted error.
func (n *Node) SnapshotRestore(ctx context.Context, r io.Reader) (SnapshotInfo, error) {
	if !n.IsLeader() {
		return SnapshotInfo{}, n.notLeader()
	}
	tmp, err := os.CreateTemp(filepath.Join(n.cfg.DataDir, "raft"), "restore-*.tmp")
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot restore: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	info, err := readArchive(r, tmp)
	if err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot restore: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return SnapshotInfo{}, err
	}
	if _, err := readHeader(tmp); err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot restore: %w", err)
	}
	if err := n.restore(ctx, tmp, info.Size-int64(headerLen), info.Index, info.Term); err != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot restore: %w", err)
	}
	n.log.Info("snapshot restored", "from_node", info.NodeID, "index", info.Index, "size", info.Size)
	return info, nil
}

// RestoreState replaces the cluster's state with raw FSM state, what
// Snapshot.WriteTo writes (for the store: a bbolt file), the way
// SnapshotRestore does. It is the migration path for a data directory from
// before clustering: bootstrap with an empty FSM, then hand the old
// database here, so that every server, including ones that join later,
// receives it as a snapshot. Leader only.
func (n *Node) RestoreState(ctx context.Context, state io.Reader) error {
	if !n.IsLeader() {
		return n.notLeader()
	}
	tmp, err := os.CreateTemp(filepath.Join(n.cfg.DataDir, "raft"), "restore-*.tmp")
	if err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	size, err := io.Copy(tmp, state)
	if err != nil {
		return fmt.Errorf("restore state: copy: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := n.restore(ctx, tmp, size, 0, 0); err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	n.log.Info("state restored", "size", size)
	return nil
}

// restore hands raft FSM state of the given size (without header) to
// install as a snapshot. The commands in it were numbered by another log
// (or none): its header says the index is unknown, so a restart restores
// it instead of trusting an index.
func (n *Node) restore(ctx context.Context, fsmState io.Reader, size int64, index, term uint64) error {
	// Raft refuses to restore while a configuration entry is uncommitted,
	// as the bootstrap configuration is until a new leader's first commit.
	if err := n.Barrier(ctx); err != nil {
		return err
	}
	state := io.MultiReader(bytes.NewReader(encodeHeader(unknownIndex)), fsmState)
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: index, Term: term, Size: size + int64(headerLen)}
	return n.translate(n.raft.Restore(meta, state, timeoutFrom(ctx)))
}

// readArchive checks an archive and copies its state into state.
func readArchive(r io.Reader, state io.Writer) (SnapshotInfo, error) {
	var (
		info     SnapshotInfo
		sums     = map[string]string{}
		got      = map[string]string{}
		sawState bool
		size     int64
	)
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return info, fmt.Errorf("not a readable snapshot archive: %w", err)
		}
		var h hash.Hash = sha256.New()
		switch hdr.Name {
		case archiveMeta:
			data, err := io.ReadAll(io.TeeReader(io.LimitReader(tr, 1<<16), h))
			if err != nil {
				return info, fmt.Errorf("read %s: %w", archiveMeta, err)
			}
			if err := json.Unmarshal(data, &info); err != nil {
				return info, fmt.Errorf("read %s: %w", archiveMeta, err)
			}
		case archiveState:
			n, err := io.Copy(io.MultiWriter(state, h), tr)
			if err != nil {
				return info, fmt.Errorf("read %s: %w", archiveState, err)
			}
			if n != hdr.Size {
				return info, fmt.Errorf("%s is truncated", archiveState)
			}
			sawState, size = true, n
		case archiveSums:
			data, err := io.ReadAll(io.LimitReader(tr, 1<<16))
			if err != nil {
				return info, fmt.Errorf("read %s: %w", archiveSums, err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				sum, name, ok := strings.Cut(line, "  ")
				if ok {
					sums[name] = sum
				}
			}
			continue
		default:
			return info, fmt.Errorf("unexpected file %q in snapshot archive", hdr.Name)
		}
		got[hdr.Name] = hex.EncodeToString(h.Sum(nil))
	}
	if !sawState || got[archiveMeta] == "" {
		return info, errors.New("snapshot archive is incomplete")
	}
	for _, name := range []string{archiveMeta, archiveState} {
		if sums[name] != got[name] {
			return info, fmt.Errorf("snapshot archive checksum mismatch for %s: the file is corrupt", name)
		}
	}
	info.Size = size
	if info.Version != archiveVersion {
		return info, fmt.Errorf("snapshot archive version %d is not supported (want %d)", info.Version, archiveVersion)
	}
	return info, nil
}
