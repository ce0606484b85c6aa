package controller

// Reading an earlier single-node store's metadata, for the import
// (import.go). Builds before the Raft store kept a single node's metadata
// in <data-dir>/meta/metadata.snapshot. Its layout, all integers
// big-endian (part of the on-disk format of those builds):
//
//	0       4         6          10         14
//	+-------+---------+----------+----------+---------------------+
//	| magic | version |  length  |  crc32c  | body (length bytes) |
//	| SBMD  | uint16  |  uint32  |  uint32  | JSON, see legacyBody |
//	+-------+---------+----------+----------+---------------------+
//
// crc32c is CRC-32 (Castagnoli) of the body only; the file ends exactly
// after the body; the body is a JSON object with unknown fields rejected.
// A file that fails any check is an error (ErrCorruptLegacy): a broker
// never starts without the topics it had.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/streambus/streambus/internal/metadata"
)

const (
	legacyMagic      = "SBMD"
	legacyVersion    = 1
	legacyHeaderSize = 14
	legacyFileName   = "metadata.snapshot"
	// maxLegacyBytes bounds what is read into memory; far above any real
	// single node's metadata.
	maxLegacyBytes = 256 << 20
)

// ErrCorruptLegacy is returned (wrapped) by ReadLegacy for a snapshot that
// cannot be trusted.
var ErrCorruptLegacy = errors.New("controller: corrupt metadata snapshot of an earlier build")

// Legacy is what a data directory of the earlier single-node store holds:
// the cluster ID, the topics (IDs, configs, replica lists and leader
// epochs) and the end of the reserved producer IDs.
type Legacy struct {
	ClusterID     string
	Topics        []*metadata.Topic // by name
	ProducerIDEnd int64
}

type legacyBody struct {
	ClusterID          string        `json:"cluster_id"`
	NodeID             int32         `json:"node_id"`
	Epoch              int64         `json:"epoch"`
	ProducerIDBlockEnd int64         `json:"producer_id_block_end"`
	WrittenUnixMs      int64         `json:"written_unix_ms"`
	Topics             []legacyTopic `json:"topics"`
}

type legacyTopic struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Configs    map[string]string `json:"configs,omitempty"`
	Partitions []legacyPartition `json:"partitions"`
}

type legacyPartition struct {
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
}

// ReadLegacy reads the earlier single-node store's snapshot in dir (a data
// directory's meta/) as written by node nodeID. It returns nil, nil when
// there is none. A corrupt snapshot (ErrCorruptLegacy) or one written by
// another node ID is an error.
func ReadLegacy(dir string, nodeID int32) (*Legacy, error) {
	f, err := os.Open(filepath.Join(dir, legacyFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("controller: open %s: %w", legacyFileName, err)
	}
	defer f.Close()
	// One byte past the limit, so an oversized file is seen without
	// trusting its reported size.
	data, err := io.ReadAll(io.LimitReader(f, maxLegacyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("controller: read %s: %w", legacyFileName, err)
	}
	if len(data) > maxLegacyBytes {
		return nil, fmt.Errorf("%w: file exceeds %d bytes", ErrCorruptLegacy, maxLegacyBytes)
	}
	return decodeLegacy(data, nodeID)
}

func decodeLegacy(data []byte, nodeID int32) (*Legacy, error) {
	body, err := unframeLegacy(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptLegacy, err)
	}
	var b legacyBody
	if err := decodeStrict(body, &b); err != nil {
		return nil, fmt.Errorf("%w: body: %w", ErrCorruptLegacy, err)
	}
	if b.NodeID != nodeID {
		// Not corruption: the directory belongs to another node.id, which
		// Kafka also refuses rather than adopting.
		return nil, fmt.Errorf("controller: metadata snapshot was written by node.id %d, but this broker is node.id %d", b.NodeID, nodeID)
	}
	l, err := legacyFromBody(&b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorruptLegacy, err)
	}
	return l, nil
}

// unframeLegacy checks the header and CRC and returns the body.
func unframeLegacy(data []byte) ([]byte, error) {
	if len(data) < legacyHeaderSize {
		return nil, fmt.Errorf("%d bytes is shorter than the %d-byte header", len(data), legacyHeaderSize)
	}
	if string(data[:4]) != legacyMagic {
		return nil, fmt.Errorf("bad magic %q", data[:4])
	}
	if v := binary.BigEndian.Uint16(data[4:]); v != legacyVersion {
		return nil, fmt.Errorf("unsupported version %d (this build reads %d)", v, legacyVersion)
	}
	n := binary.BigEndian.Uint32(data[6:])
	if uint64(n) != uint64(len(data)-legacyHeaderSize) {
		return nil, fmt.Errorf("header says %d body bytes, file has %d", n, len(data)-legacyHeaderSize)
	}
	body := data[legacyHeaderSize:]
	if want, got := binary.BigEndian.Uint32(data[10:]), crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)); want != got {
		return nil, fmt.Errorf("CRC mismatch: header %08x, body %08x", want, got)
	}
	return body, nil
}

// legacyFromBody checks the body for consistency: anything a correct
// writer could not have produced is rejected.
func legacyFromBody(b *legacyBody) (*Legacy, error) {
	if _, err := metadata.ParseID(b.ClusterID); err != nil {
		return nil, fmt.Errorf("cluster ID: %w", err)
	}
	if b.Epoch < 1 {
		return nil, fmt.Errorf("epoch %d is not positive", b.Epoch)
	}
	if b.ProducerIDBlockEnd < 0 {
		return nil, fmt.Errorf("producer ID block end %d is negative", b.ProducerIDBlockEnd)
	}
	l := &Legacy{ClusterID: b.ClusterID, ProducerIDEnd: b.ProducerIDBlockEnd}
	names, ids := map[string]bool{}, map[[16]byte]string{}
	for i := range b.Topics {
		t, err := legacyTopicFrom(&b.Topics[i], b.NodeID)
		if err != nil {
			return nil, err
		}
		if names[t.Name] {
			return nil, fmt.Errorf("topic %q appears twice", t.Name)
		}
		if other, ok := ids[t.ID]; ok {
			return nil, fmt.Errorf("topics %q and %q share ID %s", other, t.Name, metadata.FormatID(t.ID))
		}
		names[t.Name], ids[t.ID] = true, t.Name
		l.Topics = append(l.Topics, t)
	}
	slices.SortFunc(l.Topics, func(a, b *metadata.Topic) int { return strings.Compare(a.Name, b.Name) })
	return l, nil
}

func legacyTopicFrom(lt *legacyTopic, nodeID int32) (*metadata.Topic, error) {
	if err := metadata.ValidateTopicName(lt.Name); err != nil {
		return nil, fmt.Errorf("topic name %q: %s", lt.Name, metadata.ErrorMessage(err))
	}
	id, err := metadata.ParseID(lt.ID)
	if err != nil {
		return nil, fmt.Errorf("topic %q: %w", lt.Name, err)
	}
	if id == ([16]byte{}) {
		return nil, fmt.Errorf("topic %q has the zero ID", lt.Name)
	}
	if len(lt.Partitions) == 0 {
		return nil, fmt.Errorf("topic %q has no partitions", lt.Name)
	}
	t := &metadata.Topic{Name: lt.Name, ID: id, Internal: metadata.IsInternalTopic(lt.Name),
		Configs: make(map[string]string, len(lt.Configs)), Partitions: make([]metadata.Partition, len(lt.Partitions))}
	for k, v := range lt.Configs {
		t.Configs[k] = v
	}
	for i, lp := range lt.Partitions {
		p := metadata.Partition{Index: int32(i), Leader: lp.Leader, LeaderEpoch: lp.LeaderEpoch,
			Replicas: lp.Replicas, ISR: lp.ISR}
		if err := checkLegacyPartition(p, nodeID); err != nil {
			return nil, fmt.Errorf("topic %q partition %d: %w", lt.Name, i, err)
		}
		t.Partitions[i] = p
	}
	return t, nil
}

// checkLegacyPartition verifies what every partition of the single-node
// store kept: its replicas are distinct and the one broker, the ISR is a
// duplicate-free subset, and the leader, if any, is in the ISR.
func checkLegacyPartition(p metadata.Partition, nodeID int32) error {
	if len(p.Replicas) == 0 {
		return errors.New("no replicas")
	}
	for i, r := range p.Replicas {
		if r != nodeID {
			return fmt.Errorf("replica %d is not a known broker", r)
		}
		if slices.Contains(p.Replicas[:i], r) {
			return fmt.Errorf("replica %d listed twice", r)
		}
	}
	for i, r := range p.ISR {
		if !slices.Contains(p.Replicas, r) {
			return fmt.Errorf("ISR member %d is not a replica", r)
		}
		if slices.Contains(p.ISR[:i], r) {
			return fmt.Errorf("ISR member %d listed twice", r)
		}
	}
	if p.Leader != -1 && !slices.Contains(p.ISR, p.Leader) {
		return fmt.Errorf("leader %d is not in the ISR", p.Leader)
	}
	if p.LeaderEpoch < 0 {
		return fmt.Errorf("negative leader epoch %d", p.LeaderEpoch)
	}
	return nil
}
