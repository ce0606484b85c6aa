package partitions

import (
	"sort"

	"github.com/streambus/streambus/internal/storage"
)

// OfflinePartition is a hosted partition whose log failed (an I/O error
// such as ENOSPC or EIO): it accepts no writes until it recovers.
type OfflinePartition struct {
	ID  storage.PartitionID
	Err error
}

// Offline lists the hosted partitions whose log failed, sorted.
func (h *Host) Offline() []OfflinePartition {
	var out []OfflinePartition
	for _, p := range h.All() {
		if err := p.log.Failed(); err != nil {
			out = append(out, OfflinePartition{ID: p.id, Err: err})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].ID, out[j].ID
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	return out
}

// IsOffline reports whether the hosted partition id has a failed log.
func (h *Host) IsOffline(id storage.PartitionID) bool {
	p := h.Get(id)
	return p != nil && p.log.Failed() != nil
}

// reportOffline tells the metadata store which hosted replicas are
// offline; called by the ticker (the store sends only changes).
func (h *Host) reportOffline() {
	off := h.Offline()
	m := make(map[string][]int32, len(off))
	for _, p := range off {
		m[p.ID.Topic] = append(m[p.ID.Topic], p.ID.Partition)
	}
	h.meta.ReportOffline(m)
}
