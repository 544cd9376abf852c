package store

import "sync/atomic"

type commitStats struct {
	commits, writes, failures atomic.Uint64
}

func (c *commitStats) record(n int) {
	c.commits.Add(1)
	c.writes.Add(uint64(n))
}

// Stats returns how many commits ran and how many writes they carried (the
// ratio is the mean group-commit batch size), and how many failed.
func (s *Store) Stats() CommitStats {
	return CommitStats{Commits: s.stats.commits.Load(), Writes: s.stats.writes.Load(), Failures: s.stats.failures.Load()}
}
