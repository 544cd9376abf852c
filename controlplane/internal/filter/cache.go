package filter

import (
	"container/list"
	"sync"
)

// CacheSize is the number of compiled filters kept by Compile, keyed by
// expression text; the least recently used one is dropped past it.
const CacheSize = 1024

var cache = newLRU(CacheSize)

// lru is a mutex-guarded least-recently-used map from expression text to
// compiled filter.
type lru struct {
	mu    sync.Mutex
	max   int
	order *list.List // front: most recently used; values are *lruEntry
	items map[string]*list.Element
}

type lruEntry struct {
	key string
	f   *Filter
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), items: make(map[string]*list.Element, max)}
}

func (c *lru) get(key string) (*Filter, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*lruEntry).f, true
}

// add stores f under key and returns the filter now cached for key: f, or
// the one another goroutine stored first.
func (c *lru) add(key string, f *Filter) *Filter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*lruEntry).f
	}
	c.items[key] = c.order.PushFront(&lruEntry{key: key, f: f})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*lruEntry).key)
	}
	return f
}

func (c *lru) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

func (c *lru) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.order.Init()
	clear(c.items)
}
