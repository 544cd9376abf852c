package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// Validating the file before bbolt reads it.
//
// bbolt checks the checksum of its two meta pages and nothing else; it
// maps the file and follows page ids without bounds checks. A file cut
// short makes it fault past the end of the mapping (SIGBUS, a crash with a
// goroutine dump); a damaged page makes it panic on an assertion, in
// goroutines of its own that cannot be recovered. So Open reads the file
// itself first, with plain reads and bounds-checked slices:
//
//   - readMeta: both meta pages (magic, version, checksum), the page size,
//     and whether the file is as long as the meta page in use says;
//   - walkFile: every page the tree reaches, from the root bucket down
//     through nested and inline buckets: in range, not referenced twice,
//     self-identifying, of the right type, with its elements inside the
//     page and its keys in order (the invariants bbolt's own Check tests).
//
// Reading the file costs about as much as the free-page scan bbolt makes
// at every open anyway (NoFreelistSync). The same code backs
// `hookwire store check` (check.go).

// bbolt's on-disk format (go.etcd.io/bbolt/internal/common), in the
// machine's byte order.
const (
	boltMagic         = 0xED0CDAED
	boltVersion       = 2
	pageHeaderSize    = 16
	elementSize       = 16
	bucketHeaderSize  = 16
	metaSize          = 64
	metaChecksumAt    = 56
	branchPageFlag    = 0x01
	leafPageFlag      = 0x02
	metaPageFlag      = 0x04
	freelistPageFlag  = 0x10
	bucketLeafFlag    = 0x01
	pgidNoFreelist    = ^uint64(0)
	maxWalkDepth      = 64
	maxProblemsKept   = 50
	minPageSize       = 1024
	maxPageSize       = 1 << 16
	firstMetaReadSize = 0x1000
)

var ne = binary.NativeEndian

// metaPage is one of the file's two meta pages.
type metaPage struct {
	index    int   // 0 or 1
	invalid  error // why it is not usable; nil when valid
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages in use are below it
	txid     uint64
}

// fileMeta is what the meta pages say about the file.
type fileMeta struct {
	size     int64
	pageSize int
	metas    [2]metaPage
	// use is the meta page bbolt uses: the valid one with the highest txid.
	use *metaPage
}

// parseMeta reads a meta page at the start of buf.
func parseMeta(index int, buf []byte) metaPage {
	m := metaPage{index: index}
	if len(buf) < pageHeaderSize+metaSize {
		m.invalid = errors.New("cut short")
		return m
	}
	if flags := ne.Uint16(buf[8:]); flags != metaPageFlag {
		m.invalid = fmt.Errorf("page type %#x, want a meta page", flags)
		return m
	}
	b := buf[pageHeaderSize : pageHeaderSize+metaSize]
	h := fnv.New64a()
	_, _ = h.Write(b[:metaChecksumAt])
	switch {
	case ne.Uint32(b[0:]) != boltMagic:
		m.invalid = errors.New("bad magic number")
	case ne.Uint32(b[4:]) != boltVersion:
		m.invalid = fmt.Errorf("format version %d, want %d", ne.Uint32(b[4:]), boltVersion)
	case ne.Uint64(b[metaChecksumAt:]) != h.Sum64():
		m.invalid = errors.New("checksum mismatch")
	}
	m.pageSize = ne.Uint32(b[8:])
	m.root = ne.Uint64(b[16:])
	m.freelist = ne.Uint64(b[32:])
	m.pgid = ne.Uint64(b[40:])
	m.txid = ne.Uint64(b[48:])
	if m.invalid == nil && (m.pageSize < minPageSize || m.pageSize > maxPageSize || m.pageSize&(m.pageSize-1) != 0) {
		m.invalid = fmt.Errorf("page size %d is not a power of two in [%d, %d]", m.pageSize, minPageSize, maxPageSize)
	}
	return m
}

// readMeta reads and checks the meta pages and the file's length; errors
// wrap ErrCorrupt.
func readMeta(path string) (*fileMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	fm := &fileMeta{size: info.Size()}
	if fm.size < 2*minPageSize {
		return fm, fmt.Errorf("%w: the file is %d bytes, too short to hold its two meta pages: it was cut short, or is not a hookwire store", ErrCorrupt, fm.size)
	}
	buf := make([]byte, firstMetaReadSize)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fm, fmt.Errorf("read the meta pages: %w", err)
	}
	fm.metas[0] = parseMeta(0, buf[:n])
	// The second meta page sits one page in; without a valid first page,
	// try the page sizes bbolt supports, as bbolt does.
	sizes := []int{}
	if fm.metas[0].invalid == nil {
		sizes = append(sizes, int(fm.metas[0].pageSize))
	} else {
		for s := minPageSize; s <= maxPageSize; s <<= 1 {
			sizes = append(sizes, s)
		}
	}
	fm.metas[1] = metaPage{index: 1, invalid: errors.New("not found")}
	for _, ps := range sizes {
		n, err := f.ReadAt(buf, int64(ps))
		if err != nil && !errors.Is(err, io.EOF) {
			return fm, fmt.Errorf("read the meta pages: %w", err)
		}
		m := parseMeta(1, buf[:n])
		if m.invalid == nil && int(m.pageSize) == ps {
			fm.metas[1] = m
			break
		}
		if len(sizes) == 1 {
			fm.metas[1] = m
		}
	}
	for i := range fm.metas {
		m := &fm.metas[i]
		if m.invalid == nil && (fm.use == nil || m.txid > fm.use.txid) {
			fm.use = m
		}
	}
	if fm.use == nil {
		return fm, fmt.Errorf("%w: neither meta page is valid (page 0: %v; page 1: %v): the start of the file was overwritten, or it is not a hookwire store", ErrCorrupt, fm.metas[0].invalid, fm.metas[1].invalid)
	}
	if fm.metas[0].invalid == nil && fm.metas[1].invalid == nil && fm.metas[0].pageSize != fm.metas[1].pageSize {
		return fm, fmt.Errorf("%w: the meta pages disagree on the page size (%d and %d)", ErrCorrupt, fm.metas[0].pageSize, fm.metas[1].pageSize)
	}
	m := fm.use
	fm.pageSize = int(m.pageSize)
	if m.root < 2 || m.root >= m.pgid || (m.freelist != pgidNoFreelist && (m.freelist < 2 || m.freelist >= m.pgid)) {
		return fm, fmt.Errorf("%w: meta page %d (transaction %d) points outside the file's %d pages (root %d, free list %d)", ErrCorrupt, m.index, m.txid, m.pgid, m.root, int64(m.freelist))
	}
	if need := int64(m.pgid) * int64(m.pageSize); need > fm.size || int64(m.pgid) > fm.size {
		return fm, fmt.Errorf("%w: the file is %d bytes, but its meta page (transaction %d) says it holds %d pages of %d bytes (%d bytes): it was cut short (a full disk, an interrupted copy?)", ErrCorrupt, fm.size, m.txid, m.pgid, m.pageSize, need)
	}
	return fm, nil
}

// walkReport is what walkFile found.
type walkReport struct {
	meta     *fileMeta
	pages    int // tree pages visited, overflow pages included
	buckets  int
	keys     int
	problems []string
	more     int // problems beyond those kept
}

func (r *walkReport) problem(format string, args ...any) {
	if len(r.problems) < maxProblemsKept {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
		return
	}
	r.more++
}

// ok reports whether the walk found nothing wrong.
func (r *walkReport) ok() bool { return len(r.problems) == 0 }

// err summarises the problems as an error wrapping ErrCorrupt.
func (r *walkReport) err() error {
	if r.ok() {
		return nil
	}
	if n := len(r.problems) + r.more; n > 1 {
		return fmt.Errorf("%w: %s (and %d more problems; 'hookwire store check' lists them)", ErrCorrupt, r.problems[0], n-1)
	}
	return fmt.Errorf("%w: %s", ErrCorrupt, r.problems[0])
}

// walker reads tree pages with ReadAt into one buffer per depth, so the
// keys of the pages above stay valid while their children are read.
type walker struct {
	f    io.ReaderAt
	fm   *fileMeta
	hwm  uint64
	seen []uint64 // bitmap of pages already reached
	bufs [][]byte
	rep  *walkReport
}

// walkFile checks the structure of the store file at path (it must pass
// readMeta first).
func walkFile(path string) (*walkReport, error) {
	fm, err := readMeta(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rep := &walkReport{meta: fm}
	w := &walker{f: f, fm: fm, hwm: fm.use.pgid, seen: make([]uint64, (fm.use.pgid+63)/64), rep: rep}
	w.mark(0)
	w.mark(1)
	if fl := fm.use.freelist; fl != pgidNoFreelist {
		if p, err := w.read(fl, 0); err == nil && p != nil {
			w.markRange(fl, uint64(ne.Uint32(p[12:])))
		}
	}
	if _, err := w.walkPage("(root)", fm.use.root, nil, nil, 0); err != nil {
		return rep, err
	}
	return rep, nil
}

// verifyFile checks the file at path before it is opened (readMeta and
// walkFile); errors wrap ErrCorrupt when the file is damaged.
func verifyFile(path string) error {
	var rep *walkReport
	err := catchFault(func() error {
		var err error
		rep, err = walkFile(path)
		return err
	})
	if err != nil {
		return err
	}
	return rep.err()
}

func (w *walker) isSeen(id uint64) bool { return w.seen[id/64]&(1<<(id%64)) != 0 }
func (w *walker) mark(id uint64) {
	if id < w.hwm {
		w.seen[id/64] |= 1 << (id % 64)
	}
}
func (w *walker) markRange(id, overflow uint64) {
	for i := id; i <= id+overflow && i < w.hwm; i++ {
		w.mark(i)
	}
}

// read returns page id (with its overflow pages) in the buffer of depth,
// or nil when it cannot be a page; I/O errors are returned.
func (w *walker) read(id uint64, depth int) ([]byte, error) {
	ps := uint64(w.fm.pageSize)
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, make([]byte, ps))
	}
	buf := w.bufs[depth][:ps]
	if _, err := w.f.ReadAt(buf, int64(id*ps)); err != nil {
		return nil, fmt.Errorf("read page %d: %w", id, err)
	}
	overflow := uint64(ne.Uint32(buf[12:]))
	if overflow == 0 {
		return buf, nil
	}
	if id+overflow >= w.hwm {
		return buf, nil // reported by the caller
	}
	size := (overflow + 1) * ps
	if uint64(cap(w.bufs[depth])) < size {
		nb := make([]byte, size)
		copy(nb, buf)
		w.bufs[depth] = nb
	}
	buf = w.bufs[depth][:size]
	if _, err := w.f.ReadAt(buf[ps:], int64((id+1)*ps)); err != nil {
		return nil, fmt.Errorf("read page %d: %w", id, err)
	}
	return buf, nil
}

// walkPage checks page id of bucket path and everything below it; keys
// must lie in [lo, hi). It returns the largest key below it.
func (w *walker) walkPage(path string, id uint64, lo, hi []byte, depth int) ([]byte, error) {
	if depth > maxWalkDepth {
		w.rep.problem("bucket %s: the tree is more than %d levels deep at page %d", path, maxWalkDepth, id)
		return nil, nil
	}
	if id < 2 || id >= w.hwm {
		w.rep.problem("bucket %s: page %d is outside the file's pages [2, %d)", path, id, w.hwm)
		return nil, nil
	}
	p, err := w.read(id, depth)
	if err != nil {
		return nil, err
	}
	if got := ne.Uint64(p); got != id {
		w.rep.problem("bucket %s: page %d identifies itself as page %d", path, id, got)
		return nil, nil
	}
	overflow := uint64(ne.Uint32(p[12:]))
	if id+overflow >= w.hwm {
		w.rep.problem("bucket %s: page %d runs %d pages past the file's %d pages", path, id, overflow, w.hwm)
		return nil, nil
	}
	for i := id; i <= id+overflow; i++ {
		if w.isSeen(i) {
			w.rep.problem("bucket %s: page %d is reached twice (or is a meta or free-list page)", path, i)
			return nil, nil
		}
	}
	w.markRange(id, overflow)
	w.rep.pages += int(overflow) + 1
	return w.walkNode(path, id, p, lo, hi, depth)
}

// walkNode checks a branch or leaf page (p, which may be an inline
// bucket's page inside its parent's value).
func (w *walker) walkNode(path string, id uint64, p []byte, lo, hi []byte, depth int) ([]byte, error) {
	flags := ne.Uint16(p[8:])
	count := int(ne.Uint16(p[10:]))
	where := fmt.Sprintf("bucket %s: page %d", path, id)
	if id == 0 {
		where = fmt.Sprintf("bucket %s: inline page", path)
	}
	if pageHeaderSize+count*elementSize > len(p) {
		w.rep.problem("%s: %d elements do not fit in its %d bytes", where, count, len(p))
		return nil, nil
	}
	elem := func(i int, report bool) (hdr []byte, key, val []byte, ok bool) {
		at := pageHeaderSize + i*elementSize
		hdr = p[at : at+elementSize]
		var pos, ksize, vsize uint64
		if flags == leafPageFlag { // flags, pos, ksize, vsize
			pos, ksize, vsize = uint64(ne.Uint32(hdr[4:])), uint64(ne.Uint32(hdr[8:])), uint64(ne.Uint32(hdr[12:]))
		} else { // pos, ksize, pgid
			pos, ksize = uint64(ne.Uint32(hdr[0:])), uint64(ne.Uint32(hdr[4:]))
		}
		start := uint64(at) + pos
		if start+ksize+vsize > uint64(len(p)) {
			if !report {
				return hdr, nil, nil, false
			}
			w.rep.problem("%s: element %d lies outside the page (offset %d, key %d bytes, value %d bytes, page %d bytes)", where, i, start, ksize, vsize, len(p))
			return hdr, nil, nil, false
		}
		return hdr, p[start : start+ksize], p[start+ksize : start+ksize+vsize], true
	}
	order := func(i int, key, prev []byte) {
		if prev != nil && (bytes.Compare(prev, key) > 0 || (i > 0 && bytes.Equal(prev, key))) {
			w.rep.problem("%s: key %d (%s) is out of order after %s", where, i, keyText(key), keyText(prev))
		}
		if hi != nil && bytes.Compare(key, hi) >= 0 {
			w.rep.problem("%s: key %d (%s) is not below its parent's next key %s", where, i, keyText(key), keyText(hi))
		}
	}
	switch flags {
	case branchPageFlag:
		if count == 0 {
			w.rep.problem("%s: an empty branch page", where)
			return nil, nil
		}
		if id == 0 {
			w.rep.problem("%s: an inline bucket holds a branch page", where)
			return nil, nil
		}
		// Every child is walked even after a problem, so the report lists
		// as much as it can; reads stay bounds-checked and the seen bitmap
		// stops loops.
		running := lo
		for i := range count {
			hdr, key, _, ok := elem(i, true)
			if !ok {
				continue
			}
			order(i, key, running)
			next := hi
			if i < count-1 {
				if _, nk, _, ok := elem(i+1, false); ok {
					next = nk
				}
			}
			sub, err := w.walkPage(path, ne.Uint64(hdr[8:]), key, next, depth+1)
			if err != nil {
				return nil, err
			}
			running = key
			if sub != nil {
				running = sub
			}
		}
		return running, nil
	case leafPageFlag:
		running := lo
		for i := range count {
			hdr, key, val, ok := elem(i, true)
			if !ok {
				continue
			}
			order(i, key, running)
			running = key
			w.rep.keys++
			if ne.Uint32(hdr[0:])&bucketLeafFlag == 0 {
				continue
			}
			w.rep.buckets++
			sub := path + "/" + keyText(key)
			if path == "(root)" {
				sub = keyText(key)
			}
			if len(val) < bucketHeaderSize {
				w.rep.problem("%s: nested bucket %s has a %d-byte header, want %d", where, sub, len(val), bucketHeaderSize)
				continue
			}
			root := ne.Uint64(val)
			if root != 0 {
				if _, err := w.walkPage(sub, root, nil, nil, depth+1); err != nil {
					return nil, err
				}
				continue
			}
			inline := val[bucketHeaderSize:]
			if len(inline) < pageHeaderSize || ne.Uint16(inline[8:]) != leafPageFlag {
				w.rep.problem("%s: inline bucket %s does not hold a leaf page", where, sub)
				continue
			}
			if _, err := w.walkNode(sub, 0, inline, nil, nil, depth+1); err != nil {
				return nil, err
			}
		}
		return running, nil
	default:
		w.rep.problem("%s: page type %#x, want a branch or leaf page", where, flags)
		return nil, nil
	}
}
