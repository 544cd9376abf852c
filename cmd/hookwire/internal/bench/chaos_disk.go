package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	tmpfslib "github.com/hookwire/hookwire/internal/tmpfs"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The disk-full fault: the control plane's data directory is a small
// tmpfs; during the disk phase a filler file takes all its free space
// while events are published, then it is deleted and the control plane
// must recover by itself.
const (
	minTmpfsSize   = 40 << 20
	fillerName     = ".bench-disk-filler"
	diskPayload    = 2048             // the reproducer published 2 KB events
	diskPre        = time.Second      // load before filling
	diskRefuseMax  = 15 * time.Second // longest wait for the store to refuse a write
	diskRecoverMax = 20 * time.Second // longest wait for recovery once space is back
	diskPost       = time.Second      // load after recovery
)

// tmpfs is a tmpfs mounted over a control plane's data directory.
type tmpfs struct {
	dir  string
	size int64
}

// mountTmpfs mounts a tmpfs of size bytes on dir (which must be empty).
// It needs root (CAP_SYS_ADMIN); the error says why it could not.
func mountTmpfs(dir string, size int64) (*tmpfs, error) {
	if err := tmpfslib.Mount(dir, size); err != nil {
		return nil, err
	}
	return &tmpfs{dir: dir, size: size}, nil
}

// unmount unmounts the tmpfs (lazily if something still holds it open),
// after copying its files to dir+".kept" when keep is set. Call it after
// the control plane has exited. A nil t does nothing.
func (t *tmpfs) unmount(keep bool) error {
	if t == nil {
		return nil
	}
	if keep {
		_ = copyDir(t.dir, t.dir+".kept")
	}
	return tmpfslib.Unmount(t.dir)
}

// fill writes a filler file until the tmpfs has no space left and returns
// how many bytes it took.
func (t *tmpfs) fill() (int64, error) {
	return tmpfslib.Fill(filepath.Join(t.dir, fillerName), 0)
}

// free deletes the filler file.
func (t *tmpfs) free() error { return os.Remove(filepath.Join(t.dir, fillerName)) }

func copyDir(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == fillerName {
			continue
		}
		if err := copyFile(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// chaosTmpfsSize is the tmpfs for a chaos run with a soak of d: five times
// the run's estimated store writes, at least 40 MiB, so that only the
// filler fills it: a store that reached its disk reserve during the soak
// would still refuse writes after the filler is deleted, and the phase
// would measure the bench, not the recovery. The estimate is the payload
// plus 1 KiB per delivery for each event (measured before the raft log:
// 5.7 MiB for 3,000 events of 256 bytes to 2 subscriptions), for the soak
// and for the disk phase's own load (its 2 KB events for about diskPre,
// diskPost and a few seconds of recovery).
func chaosTmpfsSize(cfg Config, d time.Duration) int64 {
	perDelivery := int64(1024 * cfg.ChaosSubs)
	soak := int64(float64(cfg.ChaosRate)*d.Seconds()) * (int64(cfg.PayloadSize) + perDelivery)
	disk := int64(float64(cfg.ChaosRate)*(diskPre+diskPost+5*time.Second).Seconds()) * (diskPayload + perDelivery)
	// The raft log holds every write a second time until a snapshot
	// truncates it (up to 64k entries: the snapshot threshold and the
	// trailing logs), and a snapshot is a copy of the database file: a
	// soak of 200/s for 60s took 79 MiB.
	want := (soak + disk) * 5
	return max(minTmpfsSize, (want+1<<20-1)&^(1<<20-1))
}

// diskResult is what the disk phase saw.
type diskResult struct {
	filled       int64         // filler bytes written
	published    int64         // publishes acknowledged in the phase
	refused      int64         // publishes not acknowledged from the fill to recovery
	firstRefusal time.Duration // fill to the first refused publish (-1: none)
	notServing   bool          // gRPC health answered NOT_SERVING after the fill
	recovered    bool          // a publish was acknowledged after the space was freed, without a restart
	recovery     time.Duration // free to the first acknowledged publish
	servingAgain time.Duration // free to SERVING after NOT_SERVING (-1: not seen)
	restarted    string        // why the control plane was restarted, if it was
	seqLo, seqHi int64         // the phase's publishes
}

// chaosDisk is the disk-full phase: publish 2 KB events at the chaos rate,
// fill the tmpfs, keep it full until the store has refused a write and for
// hold more, free the space, and wait for an acknowledged publish. A
// control plane that does not recover within diskRecoverMax (or exits) is
// restarted, so the rest of the run still measures losses; the report says
// so. Publishes that fail are not acknowledged, so not expected.
func (b *Bench) chaosDisk(ctx context.Context, c *Cluster, fs *tmpfs, tag string, sq *seqs, errs *errTally, hold time.Duration) (diskResult, error) {
	r := diskResult{firstRefusal: -1, servingAgain: -1, seqLo: sq.max() + 1}
	var fillAt, freeAt, firstRefusal atomic.Int64 // unix ns
	var published, refused atomic.Int64
	recovered := make(chan struct{})
	var recoverOnce sync.Once
	refusedOne := make(chan struct{})

	// The control plane's own view: gRPC health, every 100ms.
	var notServingAt, servingAgainAt atomic.Int64
	hctx, stopHealth := context.WithCancel(ctx)
	healthDone := make(chan struct{})
	go func() {
		defer close(healthDone)
		watchHealth(hctx, c.grpcAddr, func(serving bool) {
			now := time.Now().UnixNano()
			switch {
			case !serving && fillAt.Load() != 0:
				notServingAt.CompareAndSwap(0, now)
			case serving && notServingAt.Load() != 0 && freeAt.Load() != 0:
				servingAgainAt.CompareAndSwap(0, now)
			}
		})
	}()

	// Load through the whole phase; it stops when the phase ends.
	pctx, stopPublish := context.WithCancel(ctx)
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		paced(pctx, b.cfg.ChaosRate, diskPre+diskRefuseMax+hold+diskRecoverMax+2*time.Minute, 32, func(sched time.Time) {
			started := time.Now().UnixNano()
			err := b.chaosPublish(pctx, c, tag, sq, sched, diskPayload)
			if pctx.Err() != nil {
				return
			}
			if err != nil {
				errs.add("publish (disk phase) "+errCode(err), 1)
				if f := fillAt.Load(); f != 0 && started >= f {
					refused.Add(1)
					if firstRefusal.CompareAndSwap(0, time.Now().UnixNano()) {
						close(refusedOne)
					}
				}
				return
			}
			published.Add(1)
			if f := freeAt.Load(); f != 0 && started >= f {
				recoverOnce.Do(func() { close(recovered) })
			}
		})
	}()

	// wait returns when ch is closed, d passes, the control plane exits or
	// ctx ends, and says which.
	wait := func(ch <-chan struct{}, d time.Duration) string {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ch:
			return "done"
		case <-t.C:
			return "timeout"
		case <-c.server().Exited():
			return "exited"
		case <-ctx.Done():
			return "cancelled"
		}
	}
	err := func() error {
		if err := sleep(ctx, diskPre); err != nil {
			return err
		}
		fillAt.Store(time.Now().UnixNano())
		n, err := fs.fill()
		r.filled = n
		if err != nil {
			_ = fs.free()
			return err
		}
		b.logf("chaos: disk full (%.1f MiB filler on a %d MiB tmpfs); waiting for a refused publish (at most %s), then %s more", float64(n)/(1<<20), fs.size>>20, diskRefuseMax, hold)
		if wait(refusedOne, diskRefuseMax) == "timeout" {
			b.logf("chaos: no publish refused within %s of the disk filling", diskRefuseMax)
		}
		if err := sleep(ctx, hold); err != nil {
			return err
		}
		if err := fs.free(); err != nil {
			return fmt.Errorf("free the disk: %w", err)
		}
		freeAt.Store(time.Now().UnixNano())
		b.logf("chaos: disk space freed; waiting for the control plane to recover by itself (at most %s)", diskRecoverMax)
		switch wait(recovered, diskRecoverMax) {
		case "done":
			r.recovered = true
			r.recovery = time.Since(time.Unix(0, freeAt.Load()))
		case "timeout":
			r.restarted = fmt.Sprintf("no publish was acknowledged within %s of the space being freed", diskRecoverMax)
		case "exited":
			r.restarted = "the control plane exited: " + lastLine(c.server().logTail())
		default:
			return ctx.Err()
		}
		if r.restarted != "" {
			b.logf("chaos: %s; restarting the control plane", r.restarted)
			if _, _, err := c.restartServer(ctx, true); err != nil {
				return fmt.Errorf("restart after disk full: %w", err)
			}
			wait(recovered, 30*time.Second)
		}
		return sleep(ctx, diskPost)
	}()

	stopPublish()
	<-pubDone
	stopHealth()
	<-healthDone
	r.seqHi = sq.max()
	r.published, r.refused = published.Load(), refused.Load()
	if f := firstRefusal.Load(); f != 0 {
		r.firstRefusal = time.Duration(f - fillAt.Load())
	}
	r.notServing = notServingAt.Load() != 0
	if s := servingAgainAt.Load(); s != 0 {
		r.servingAgain = time.Duration(max(0, s-freeAt.Load()))
	}
	return r, err
}

// watchHealth asks the control plane's gRPC health service every 100ms
// until ctx ends and reports each answer (an error counts as not
// serving only when the server answered NOT_SERVING).
func watchHealth(ctx context.Context, addr string, report func(serving bool)) {
	conn, err := dialBackoff(addr, "", 20*time.Millisecond, 100*time.Millisecond)
	if err != nil {
		return
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false))
		cancel()
		if err == nil {
			report(resp.GetStatus() == healthpb.HealthCheckResponse_SERVING)
		}
		if sleep(ctx, 100*time.Millisecond) != nil {
			return
		}
	}
}

func lastLine(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}

// unackedArrived counts the publishes in seqs [lo, hi] that were not
// acknowledged but reached at least one subscription anyway.
func (s *Sink) unackedArrived(lo, hi int64, subs int, acked func(int64) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for seq := lo; seq <= hi; seq++ {
		if acked(seq) {
			continue
		}
		for sub := range subs {
			if _, ok := s.recs[recKey(sub, seq)]; ok {
				n++
				break
			}
		}
	}
	return n
}
