package broker

// DescribeLogDirs v0–4: the one data directory with the size of each
// hosted partition's log, and (v4) the file system's total and usable bytes.

import (
	"sort"
	"syscall"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/partitions"
	"github.com/streambus/streambus/internal/storage"
)

func (b *Broker) handleDescribeLogDirs(req *kmsg.DescribeLogDirsRequest) *kmsg.DescribeLogDirsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = b.cfg.DataDir
	var st syscall.Statfs_t
	if err := syscall.Statfs(b.cfg.DataDir, &st); err == nil {
		dir.TotalBytes = int64(st.Blocks) * st.Bsize
		dir.UsableBytes = int64(st.Bavail) * st.Bsize
	}
	wanted := func(storage.PartitionID) bool { return true }
	if req.Topics != nil {
		set := make(map[storage.PartitionID]bool)
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				set[storage.PartitionID{Topic: t.Topic, Partition: p}] = true
			}
		}
		wanted = func(id storage.PartitionID) bool { return set[id] }
	}
	byTopic := make(map[string][]*partitions.Partition)
	for _, p := range b.host.All() {
		if id := p.ID(); wanted(id) {
			byTopic[id.Topic] = append(byTopic[id.Topic], p)
		}
	}
	names := make([]string, 0, len(byTopic))
	for n := range byTopic {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		parts := byTopic[n]
		sort.Slice(parts, func(i, j int) bool { return parts[i].ID().Partition < parts[j].ID().Partition })
		rt := kmsg.NewDescribeLogDirsResponseDirTopic()
		rt.Topic = n
		for _, p := range parts {
			rp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			rp.Partition = p.ID().Partition
			rp.Size = p.Log().Size()
			rt.Partitions = append(rt.Partitions, rp)
		}
		dir.Topics = append(dir.Topics, rt)
	}
	resp.Dirs = append(resp.Dirs, dir)
	return resp
}
