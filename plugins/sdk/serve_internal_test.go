package sdk

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestWatchParentNoticesReparenting(t *testing.T) {
	var ppid atomic.Int64
	ppid.Store(4242)
	orphaned := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchParent(4242, func() int { return int(ppid.Load()) }, time.Millisecond, func() { close(orphaned) })
	}()
	select {
	case <-orphaned:
		t.Fatal("reported orphaned while the parent is alive")
	case <-time.After(20 * time.Millisecond):
	}
	ppid.Store(1) // the agent died; init adopted the plugin
	<-orphaned
	<-done
}

func TestWatchParentIgnoresInitChildren(t *testing.T) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchParent(1, func() int { panic("must not poll") }, time.Millisecond, func() { panic("must not fire") })
	}()
	<-done
}
