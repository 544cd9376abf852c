package controlplane

import (
	"time"

	"github.com/hookwire/hookwire/controlplane/internal/store"
)

// StoreCheckReport is what CheckStore found; Write prints it.
type StoreCheckReport = store.CheckReport

// Errors of a store that cannot be opened, for callers that explain them.
var (
	// ErrStoreCorrupt: the store file is damaged (Start refuses it).
	ErrStoreCorrupt = store.ErrCorrupt
	// ErrStoreMissing: the data directory held a store whose file is now
	// missing or empty (Start refuses unless Config.AllowNewStore).
	ErrStoreMissing = store.ErrMissingStore
)

// CheckStore examines the store in dataDir offline and read-only: the
// marker, the meta pages and the file's length, the tree's structure,
// every record's checksum and decoding, and the indexes against their
// records. It refuses to run while a server holds the directory. The error
// is for a check that could not run; damage is listed in the report.
func CheckStore(dataDir string) (*StoreCheckReport, error) {
	return store.Check(dataDir, time.Second)
}
