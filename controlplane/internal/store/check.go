package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/ids"
	storev1 "github.com/hookwire/hookwire/gen/go/hookwire/store/v1"
	hookwirev1 "github.com/hookwire/hookwire/gen/go/hookwire/v1"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"
)

// Checking a store offline (`hookwire store check`).
//
// Check opens nothing for writing: it reads the marker and the meta pages,
// walks the tree with the validation Open uses (verify.go), and only if
// that found nothing opens the file read-only with bbolt (a shared lock:
// a running server holds it exclusively, so Check refuses to run beside
// it) to run bbolt's own Check and to read every record: its checksum,
// its protobuf decoding, and the index entries that must agree with it.

// CheckReport is what Check found.
type CheckReport struct {
	Path     string
	FileSize int64
	PageSize int
	// Pages is the number of pages in use (the meta page's high-water mark).
	Pages uint64
	TxID  uint64
	// Meta describes the two meta pages.
	Meta    [2]string
	Schema  uint32
	StoreID string
	// MarkerID is the store id in the data directory's marker ("" without one).
	MarkerID string
	// TreePages, Buckets and Keys count what the structural walk visited.
	TreePages, Buckets, Keys int
	// Records counts the records read per bucket.
	Records map[string]int
	// Notes are facts worth knowing that are not problems.
	Notes []string
	// Problems lists what is wrong (at most maxCheckProblems; MoreProblems
	// counts the rest).
	Problems     []string
	MoreProblems int
	// Stage is how far the check got: "file", "meta", "structure",
	// "records".
	Stage string
}

// maxCheckProblems bounds the problems a report lists.
const maxCheckProblems = 200

// OK reports whether the check found no problem.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

// ProblemCount is the number of problems found.
func (r *CheckReport) ProblemCount() int { return len(r.Problems) + r.MoreProblems }

func (r *CheckReport) problem(format string, args ...any) {
	if len(r.Problems) < maxCheckProblems {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
		return
	}
	r.MoreProblems++
}

// Check examines the store in dir without changing it. The error is for a
// check that could not run (the store is in use, the file unreadable);
// damage is reported in the report's Problems.
func Check(dir string, timeout time.Duration) (*CheckReport, error) {
	if timeout <= 0 {
		timeout = time.Second
	}
	path := filepath.Join(dir, FileName)
	rep := &CheckReport{Path: path, Records: map[string]int{}, Stage: "file"}
	m, err := readMarker(dir)
	if err != nil {
		return nil, err
	}
	switch {
	case m == nil:
		rep.Notes = append(rep.Notes, "the data directory has no marker file (one is written at the next start)")
	case m.damaged != nil:
		rep.problem("the marker file %s is damaged: %v", filepath.Join(dir, MarkerFileName), m.damaged)
	default:
		rep.MarkerID = m.StoreID
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && m != nil:
		rep.problem("%s is missing, but the marker says this directory held store %s: restore it from a backup", path, rep.MarkerID)
		return rep, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s does not exist: is %s a hookwire data directory?", path, dir)
	case err != nil:
		return nil, err
	case info.Size() == 0 && m != nil:
		rep.problem("%s is empty (0 bytes), but the marker says this directory held store %s: restore it from a backup", path, rep.MarkerID)
		return rep, nil
	case info.Size() == 0:
		rep.problem("%s is empty (0 bytes)", path)
		return rep, nil
	}
	rep.FileSize = info.Size()
	rep.Stage = "meta"
	var walk *walkReport
	err = catchFault(func() error {
		fm, err := readMeta(path)
		if fm != nil {
			rep.describeMeta(fm)
		}
		if err != nil {
			return err
		}
		rep.Stage = "structure"
		walk, err = walkFile(path)
		return err
	})
	if errors.Is(err, ErrCorrupt) {
		rep.problem("%s", strings.TrimPrefix(err.Error(), ErrCorrupt.Error()+": "))
		return rep, nil
	}
	if err != nil {
		return nil, err
	}
	rep.TreePages, rep.Buckets, rep.Keys = walk.pages, walk.buckets, walk.keys
	for _, p := range walk.problems {
		rep.problem("%s", p)
	}
	rep.MoreProblems += walk.more
	if !walk.ok() {
		return rep, nil // bbolt must not read a damaged tree
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is open in a running hookwire process; stop it first (store check runs offline), or check a copy of the data directory", ErrInUse, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", path, err)
	}
	defer db.Close()
	rep.Stage = "records"
	err = safeView(db, func(tx *bolt.Tx) error {
		for e := range tx.Check() {
			rep.problem("bbolt check: %v", e)
		}
		return checkRecords(tx, rep)
	})
	if err != nil {
		rep.problem("%v", err)
	}
	return rep, nil
}

func (r *CheckReport) describeMeta(fm *fileMeta) {
	for i, m := range fm.metas {
		switch {
		case m.invalid != nil:
			r.Meta[i] = "invalid: " + m.invalid.Error()
		case fm.use == &fm.metas[i]:
			r.Meta[i] = fmt.Sprintf("ok, transaction %d (in use)", m.txid)
		default:
			r.Meta[i] = fmt.Sprintf("ok, transaction %d", m.txid)
		}
	}
	if fm.use != nil {
		r.PageSize, r.Pages, r.TxID = int(fm.use.pageSize), fm.use.pgid, fm.use.txid
	}
}

// recordTypes are the messages of the sealed buckets that hold protobuf.
var recordTypes = map[string]func() proto.Message{
	string(bucketTenants):       func() proto.Message { return &hookwirev1.Tenant{} },
	string(bucketAPIKeys):       func() proto.Message { return &storev1.ApiKeyRecord{} },
	string(bucketSubscriptions): func() proto.Message { return &storev1.SubscriptionRecord{} },
	string(bucketEvents):        func() proto.Message { return &hookwirev1.Event{} },
	string(bucketDeliveries):    func() proto.Message { return &hookwirev1.Delivery{} },
	string(bucketAttempts):      func() proto.Message { return &hookwirev1.Attempt{} },
	string(bucketEventTraces):   func() proto.Message { return &storev1.TraceContext{} },
	string(bucketTenantPurges):  func() proto.Message { return &storev1.TenantPurge{} },
	string(bucketAudit):         func() proto.Message { return &hookwirev1.AuditEvent{} },
	string(bucketJoinTokens):    func() proto.Message { return &hookwirev1.JoinToken{} },
	string(bucketDeliveryStats): func() proto.Message { return &storev1.StatsMinute{} },
}

// indexBuckets hold only keys.
var indexBuckets = [][]byte{bucketDeliveriesByTenant, bucketDeliveriesByEvent, bucketDeliveriesBySub, bucketDue, bucketOrdered}

// checkRecords reads every record and index entry.
func checkRecords(tx *bolt.Tx, rep *CheckReport) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		rep.problem("the meta bucket is missing: this is not a hookwire store")
		return nil
	}
	if v := meta.Get(metaSchema); len(v) == 4 {
		rep.Schema = binary.BigEndian.Uint32(v)
	} else {
		rep.problem("the schema version is missing or malformed (%x)", v)
	}
	rep.StoreID = string(meta.Get(metaStoreID))
	if rep.MarkerID != "" && rep.StoreID != "" && rep.MarkerID != rep.StoreID {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the marker names store %s, the file is store %s (the marker is rewritten at the next start)", rep.MarkerID, rep.StoreID))
	}
	c := &checker{tx: tx, rep: rep, sealed: rep.Schema >= 2}
	if pos := meta.Get(metaMigration); pos != nil {
		rep.Notes = append(rep.Notes, "a migration to schema version 2 is unfinished (it resumes at the next start); records it has not reached yet carry no checksum")
		c.migration = bytes.Clone(pos)
	}
	if rep.Schema == 1 {
		rep.Notes = append(rep.Notes, "schema version 1: records carry no checksums yet (they are added at the next start)")
	}
	known := map[string]bool{}
	for _, b := range allBuckets {
		known[string(b)] = true
	}
	for _, b := range sealedBuckets {
		known[string(b)] = true
	}
	_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		if !known[string(name)] {
			rep.Notes = append(rep.Notes, fmt.Sprintf("bucket %q is not one this hookwire knows; not checked", name))
		}
		return nil
	})
	for _, b := range allBuckets {
		if tx.Bucket(b) == nil {
			rep.problem("bucket %s is missing", b)
		}
	}
	for _, name := range sealedBuckets {
		c.records(name)
	}
	for _, name := range indexBuckets {
		if b := tx.Bucket(name); b != nil {
			rep.Records[string(name)] = b.Stats().KeyN
		}
	}
	c.deliveries()
	c.indexes()
	return nil
}

// checker reads records for Check.
type checker struct {
	tx     *bolt.Tx
	rep    *CheckReport
	sealed bool
	// migration is the position of an unfinished migration (migrate.go):
	// records up to it are sealed, the others not yet.
	migration []byte
}

// isSealed reports whether the value under key in bucket carries a
// checksum.
func (c *checker) isSealed(bucket, key []byte) bool {
	if !c.sealed || c.migration == nil {
		return c.sealed
	}
	name, after, _ := bytes.Cut(c.migration, []byte{0})
	index := func(n []byte) int {
		for i, b := range sealedBuckets {
			if bytes.Equal(b, n) {
				return i
			}
		}
		return -1
	}
	at, here := index(name), index(bucket)
	switch {
	case len(name) == 0 || here > at:
		return false
	case here < at:
		return true
	default:
		return len(after) > 0 && bytes.Compare(key, after) <= 0
	}
}

// value opens a value read from bucket under key (reporting a damaged
// one); ok false when it is damaged.
func (c *checker) value(bucket, key, v []byte) ([]byte, bool) {
	if !c.isSealed(bucket, key) {
		return v, true
	}
	rec, err := openValue(bucket, key, v)
	if err != nil {
		c.rep.problem("%s", strings.TrimPrefix(err.Error(), ErrCorrupt.Error()+": "))
		return nil, false
	}
	return rec, true
}

// records verifies and decodes every record of a sealed bucket.
func (c *checker) records(name []byte) {
	b := c.tx.Bucket(name)
	if b == nil {
		return
	}
	newMsg := recordTypes[string(name)]
	n := 0
	_ = b.ForEach(func(k, v []byte) error {
		n++
		if v == nil {
			c.rep.problem("bucket %s holds a nested bucket %s", name, keyText(k))
			return nil
		}
		rec, ok := c.value(name, k, v)
		if !ok {
			return nil
		}
		if newMsg != nil {
			if err := proto.Unmarshal(rec, newMsg()); err != nil {
				c.rep.problem("record %s/%s does not decode: %v", name, keyText(k), err)
			}
			return nil
		}
		c.raw(name, k, rec)
		return nil
	})
	c.rep.Records[string(name)] = n
}

// raw checks the records that are not protobuf.
func (c *checker) raw(name, k, rec []byte) {
	switch {
	case bytes.Equal(name, bucketIdempotency):
		if len(rec) != 16 {
			c.rep.problem("idempotency key %s holds %d bytes, want an event id of 16", keyText(k), len(rec))
		} else if c.tx.Bucket(bucketEvents).Get(rec) == nil {
			c.rep.problem("idempotency key %s names event %s, which does not exist", keyText(k), idText(ids.Event, rec))
		}
	case bytes.Equal(name, bucketAuditByTime):
		if ab := c.tx.Bucket(bucketAudit); ab == nil || ab.Get(tenantKey(string(rec), k)) == nil {
			c.rep.problem("audit_by_time entry %s names an audit event of scope %q that does not exist", idText(AuditIDPrefix, k), rec)
		}
	}
}

func idText(prefix string, raw []byte) string {
	if len(raw) != 16 {
		return fmt.Sprintf("%x", raw)
	}
	var id ids.ID
	copy(id[:], raw)
	return ids.Format(prefix, id)
}

// deliveries checks every delivery against its indexes and its event.
func (c *checker) deliveries() {
	tx := c.tx
	dvb := tx.Bucket(bucketDeliveries)
	if dvb == nil {
		return
	}
	byTenant, byEvent, bySub := tx.Bucket(bucketDeliveriesByTenant), tx.Bucket(bucketDeliveriesByEvent), tx.Bucket(bucketDeliveriesBySub)
	due, ordered, events := tx.Bucket(bucketDue), tx.Bucket(bucketOrdered), tx.Bucket(bucketEvents)
	if byTenant == nil || byEvent == nil || bySub == nil || due == nil || ordered == nil || events == nil {
		return // reported as missing buckets
	}
	const pending = hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING
	_ = dvb.ForEach(func(k, v []byte) error {
		rec, ok := c.value(bucketDeliveries, k, v)
		if !ok {
			return nil
		}
		d := &hookwirev1.Delivery{}
		if proto.Unmarshal(rec, d) != nil || len(k) != 16 {
			return nil // reported by records
		}
		var did ids.ID
		copy(did[:], k)
		name := ids.Format(ids.Delivery, did)
		sub, serr := ids.Parse(ids.Subscription, d.GetSubscriptionId())
		eid, eerr := ids.Parse(ids.Event, d.GetEventId())
		if serr != nil || eerr != nil || d.GetId() != name {
			c.rep.problem("delivery %s names itself %q, its subscription %q and its event %q: not valid ids", name, d.GetId(), d.GetSubscriptionId(), d.GetEventId())
			return nil
		}
		if events.Get(eid[:]) == nil {
			c.rep.problem("delivery %s belongs to event %s, which does not exist", name, d.GetEventId())
		}
		for _, ix := range []struct {
			b    *bolt.Bucket
			name []byte
			key  []byte
		}{
			{byTenant, bucketDeliveriesByTenant, append(tenantPrefix(d.GetTenant()), did[:]...)},
			{byEvent, bucketDeliveriesByEvent, append(bytes.Clone(eid[:]), did[:]...)},
			{bySub, bucketDeliveriesBySub, append(bytes.Clone(sub[:]), did[:]...)},
		} {
			if !hasKey(ix.b, ix.key) {
				c.rep.problem("delivery %s has no %s entry", name, ix.name)
			}
		}
		okey := orderedKey(sub, OrderingHash(d.GetOrderingKey()), did)
		inOrdered := hasKey(ordered, okey)
		hasDue := hasKey(due, dueKey(sub, d.GetNextAttemptTime().AsTime().UnixNano(), did))
		switch {
		case d.GetStatus() != pending && (inOrdered || hasDue):
			c.rep.problem("delivery %s is %s but still queued (due %v, ordered %v)", name, d.GetStatus(), hasDue, inOrdered)
		case d.GetStatus() == pending && !inOrdered && !hasDue:
			c.rep.problem("delivery %s is pending but not in the due index at its next attempt time %s", name, d.GetNextAttemptTime().AsTime().UTC().Format(time.RFC3339Nano))
		case d.GetStatus() == pending && inOrdered:
			first, _ := ordered.Cursor().Seek(okey[:24])
			if head := bytes.Equal(first, okey); head != hasDue {
				c.rep.problem("delivery %s of an ordered group: head %v but due %v", name, head, hasDue)
			}
		}
		return nil
	})
}

// indexes checks that index entries point at records that exist and agree.
func (c *checker) indexes() {
	tx := c.tx
	dvb := tx.Bucket(bucketDeliveries)
	if dvb == nil {
		return
	}
	// delivery returns the delivery an index entry names, or nil (and
	// reports it) when there is none.
	delivery := func(bucket, key, did []byte) *hookwirev1.Delivery {
		v := dvb.Get(did)
		if v == nil {
			c.rep.problem("index %s entry %x names delivery %s, which does not exist", bucket, key, idText(ids.Delivery, did))
			return nil
		}
		rec, ok := c.value(bucketDeliveries, did, v)
		if !ok {
			return nil
		}
		d := &hookwirev1.Delivery{}
		if proto.Unmarshal(rec, d) != nil {
			return nil
		}
		return d
	}
	check := func(name []byte, keyLen int, each func(k []byte)) {
		b := tx.Bucket(name)
		if b == nil {
			return
		}
		_ = b.ForEach(func(k, _ []byte) error {
			if keyLen > 0 && len(k) != keyLen || len(k) < 16 {
				c.rep.problem("index %s has a malformed key %x", name, k)
				return nil
			}
			each(k)
			return nil
		})
	}
	check(bucketDeliveriesByTenant, 0, func(k []byte) {
		if d := delivery(bucketDeliveriesByTenant, k, k[len(k)-16:]); d != nil && !bytes.Equal(k[:len(k)-16], tenantPrefix(d.GetTenant())) {
			c.rep.problem("index deliveries_by_tenant entry %x does not match delivery %s of tenant %q", k, d.GetId(), d.GetTenant())
		}
	})
	check(bucketDeliveriesByEvent, 32, func(k []byte) {
		// The event's own entries; a re-sent delivery may name another
		// event only if it was added to this one (AddDeliveries).
		if d := delivery(bucketDeliveriesByEvent, k, k[16:]); d != nil && d.GetEventId() != idText(ids.Event, k[:16]) {
			c.rep.problem("index deliveries_by_event entry %x does not match delivery %s of event %s", k, d.GetId(), d.GetEventId())
		}
	})
	check(bucketDeliveriesBySub, 32, func(k []byte) {
		if d := delivery(bucketDeliveriesBySub, k, k[16:]); d != nil && d.GetSubscriptionId() != idText(ids.Subscription, k[:16]) {
			c.rep.problem("index deliveries_by_sub entry %x does not match delivery %s of subscription %s", k, d.GetId(), d.GetSubscriptionId())
		}
	})
	check(bucketDue, dueKeyLen, func(k []byte) {
		e, _ := decodeDue(k)
		d := delivery(bucketDue, k, e.DeliveryID[:])
		if d == nil {
			return
		}
		if d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING || d.GetSubscriptionId() != ids.Format(ids.Subscription, e.SubID) || !d.GetNextAttemptTime().AsTime().Equal(e.At) {
			c.rep.problem("index due entry %x does not match delivery %s (%s, next attempt %s)", k, d.GetId(), d.GetStatus(), d.GetNextAttemptTime().AsTime().UTC().Format(time.RFC3339Nano))
		}
	})
	check(bucketOrdered, 40, func(k []byte) {
		if d := delivery(bucketOrdered, k, k[24:]); d != nil && d.GetStatus() != hookwirev1.DeliveryStatus_DELIVERY_STATUS_PENDING {
			c.rep.problem("index ordered entry %x names delivery %s, which is %s", k, d.GetId(), d.GetStatus())
		}
	})
	check(bucketAttempts, 20, func(k []byte) {
		if dvb.Get(k[:16]) == nil {
			c.rep.problem("attempt %d of delivery %s: the delivery does not exist", binary.BigEndian.Uint32(k[16:]), idText(ids.Delivery, k[:16]))
		}
	})
	check(bucketEventTraces, 16, func(k []byte) {
		if tx.Bucket(bucketEvents).Get(k) == nil {
			c.rep.problem("event_traces entry for event %s: the event does not exist", idText(ids.Event, k))
		}
	})
}

// Write prints the report for a person.
func (r *CheckReport) Write(w io.Writer) {
	line := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-11s %s\n", label, fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "hookwire store check %s\n", r.Path)
	if r.FileSize > 0 {
		line("file", "%d bytes, page size %d, %d pages in use, last transaction %d", r.FileSize, r.PageSize, r.Pages, r.TxID)
	}
	if r.Meta[0] != "" {
		line("meta pages", "page 0: %s; page 1: %s", r.Meta[0], r.Meta[1])
	}
	switch {
	case r.StoreID != "":
		line("store", "%s, schema version %d (marker: %s)", r.StoreID, r.Schema, orNone(r.MarkerID))
	case r.MarkerID != "":
		line("marker", "store %s", r.MarkerID)
	}
	if r.TreePages > 0 {
		line("structure", "%d pages, %d buckets, %d keys walked", r.TreePages, r.Buckets, r.Keys)
	}
	if len(r.Records) > 0 {
		names := make([]string, 0, len(r.Records))
		for n := range r.Records {
			names = append(names, n)
		}
		sort.Strings(names)
		parts := make([]string, len(names))
		for i, n := range names {
			parts[i] = fmt.Sprintf("%s %d", n, r.Records[n])
		}
		line("records", "%s", strings.Join(parts, ", "))
	}
	for _, n := range r.Notes {
		line("note", "%s", n)
	}
	for _, p := range r.Problems {
		line("PROBLEM", "%s", p)
	}
	if r.MoreProblems > 0 {
		line("PROBLEM", "… and %d more", r.MoreProblems)
	}
	if r.OK() {
		line("result", "OK: no problems found")
		return
	}
	line("result", "%s found (checked up to: %s)", plural(r.ProblemCount(), "problem"), r.Stage)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// plural is "1 problem" or "n problems".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
