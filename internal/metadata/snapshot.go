package metadata

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// On-disk format constants; see the package documentation. Changing any of
// them makes existing snapshots unreadable.
const (
	snapshotMagic      = "SBMD"
	snapshotVersion    = 1
	snapshotHeaderSize = 14
	snapshotFileName   = "metadata.snapshot"
	snapshotTempName   = snapshotFileName + ".tmp"

	// maxSnapshotBytes bounds what OpenLocal reads into memory; far above
	// any real cluster's metadata (a million partitions is ~50 MiB).
	maxSnapshotBytes = 256 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// snapBody is the JSON body of a snapshot. Partition numbers are implied by
// position; Internal is derived from the name.
type snapBody struct {
	ClusterID string `json:"cluster_id"`
	// NodeID is the broker that wrote the file; a different node.id at open
	// is refused, as Kafka refuses a mismatched meta.properties.
	NodeID int32 `json:"node_id"`
	Epoch  int64 `json:"epoch"`
	// ProducerIDBlockEnd is one past the last producer ID that may have
	// been handed out; allocation after open starts here.
	ProducerIDBlockEnd int64       `json:"producer_id_block_end"`
	WrittenUnixMs      int64       `json:"written_unix_ms"` // informational only
	Topics             []snapTopic `json:"topics"`
}

type snapTopic struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"` // FormatID
	Configs    map[string]string `json:"configs,omitempty"`
	Partitions []snapPartition   `json:"partitions"`
}

type snapPartition struct {
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
}

// snapState is what a snapshot holds: the image and the producer-ID
// reservation.
type snapState struct {
	image              *Image
	producerIDBlockEnd int64
}

// encodeSnapshot renders st as a complete snapshot file.
func encodeSnapshot(st snapState, nowMs int64) ([]byte, error) {
	img := st.image
	body := snapBody{
		ClusterID:          img.ClusterID,
		NodeID:             img.ControllerID,
		Epoch:              img.Epoch,
		ProducerIDBlockEnd: st.producerIDBlockEnd,
		WrittenUnixMs:      nowMs,
		Topics:             make([]snapTopic, 0, len(img.Topics)),
	}
	for _, name := range img.TopicNames() {
		t := img.Topics[name]
		st := snapTopic{Name: t.Name, ID: FormatID(t.ID), Configs: t.Configs,
			Partitions: make([]snapPartition, len(t.Partitions))}
		for i, p := range t.Partitions {
			st.Partitions[i] = snapPartition{Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: p.Replicas, ISR: p.ISR}
		}
		body.Topics = append(body.Topics, st)
	}
	js, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("metadata: encode snapshot: %w", err)
	}
	if len(js) > maxSnapshotBytes-snapshotHeaderSize {
		return nil, fmt.Errorf("metadata: encode snapshot: %d bytes exceeds the %d-byte limit", len(js), maxSnapshotBytes)
	}
	return frameBody(make([]byte, 0, snapshotHeaderSize+len(js)), js), nil
}

// frameBody appends the header for body, then body, to dst.
func frameBody(dst, body []byte) []byte {
	dst = append(dst, snapshotMagic...)
	dst = binary.BigEndian.AppendUint16(dst, snapshotVersion)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(body, castagnoli))
	return append(dst, body...)
}

// decodeSnapshot parses and checks a snapshot file, with broker as the only
// known broker. Every failure wraps ErrCorruptSnapshot, except a snapshot
// that is intact but was written under another node ID.
func decodeSnapshot(data []byte, broker Broker) (snapState, error) {
	body, err := unframeSnapshot(data)
	if err != nil {
		return snapState{}, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	var sb snapBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sb); err != nil {
		return snapState{}, fmt.Errorf("%w: body: %w", ErrCorruptSnapshot, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return snapState{}, fmt.Errorf("%w: body: trailing data after the JSON object", ErrCorruptSnapshot)
	}
	if sb.NodeID != broker.NodeID {
		// Not corruption: the directory belongs to another node.id, which
		// Kafka also refuses rather than adopting.
		return snapState{}, fmt.Errorf("metadata: snapshot was written by node.id %d, but this broker is node.id %d", sb.NodeID, broker.NodeID)
	}
	st, err := stateFromBody(&sb, broker)
	if err != nil {
		return snapState{}, fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	return st, nil
}

// unframeSnapshot checks the header and CRC and returns the body.
func unframeSnapshot(data []byte) ([]byte, error) {
	if len(data) < snapshotHeaderSize {
		return nil, fmt.Errorf("%d bytes is shorter than the %d-byte header", len(data), snapshotHeaderSize)
	}
	if string(data[:4]) != snapshotMagic {
		return nil, fmt.Errorf("bad magic %q", data[:4])
	}
	if v := binary.BigEndian.Uint16(data[4:]); v != snapshotVersion {
		return nil, fmt.Errorf("unsupported version %d (this build reads %d)", v, snapshotVersion)
	}
	n := binary.BigEndian.Uint32(data[6:])
	if uint64(n) != uint64(len(data)-snapshotHeaderSize) {
		return nil, fmt.Errorf("header says %d body bytes, file has %d", n, len(data)-snapshotHeaderSize)
	}
	body := data[snapshotHeaderSize:]
	if want, got := binary.BigEndian.Uint32(data[10:]), crc32.Checksum(body, castagnoli); want != got {
		return nil, fmt.Errorf("CRC mismatch: header %08x, body %08x", want, got)
	}
	return body, nil
}

// stateFromBody checks the decoded body for internal consistency and builds
// the image. Anything a correct writer could not have produced is rejected.
func stateFromBody(sb *snapBody, broker Broker) (snapState, error) {
	if _, err := ParseID(sb.ClusterID); err != nil {
		return snapState{}, fmt.Errorf("cluster ID: %w", err)
	}
	if sb.Epoch < 1 {
		return snapState{}, fmt.Errorf("epoch %d is not positive", sb.Epoch)
	}
	if sb.ProducerIDBlockEnd < 0 {
		return snapState{}, fmt.Errorf("producer ID block end %d is negative", sb.ProducerIDBlockEnd)
	}
	img := &Image{
		ClusterID:    sb.ClusterID,
		ControllerID: broker.NodeID,
		Brokers:      map[int32]Broker{broker.NodeID: broker},
		Topics:       make(map[string]*Topic, len(sb.Topics)),
		TopicsByID:   make(map[[16]byte]*Topic, len(sb.Topics)),
		Epoch:        sb.Epoch,
	}
	for i := range sb.Topics {
		t, err := topicFromSnap(&sb.Topics[i], img.Brokers)
		if err != nil {
			return snapState{}, err
		}
		if img.Topics[t.Name] != nil {
			return snapState{}, fmt.Errorf("topic %q appears twice", t.Name)
		}
		if other := img.TopicsByID[t.ID]; other != nil {
			return snapState{}, fmt.Errorf("topics %q and %q share ID %s", other.Name, t.Name, FormatID(t.ID))
		}
		img.putTopic(t)
	}
	return snapState{image: img, producerIDBlockEnd: sb.ProducerIDBlockEnd}, nil
}

func topicFromSnap(st *snapTopic, brokers map[int32]Broker) (*Topic, error) {
	if err := ValidateTopicName(st.Name); err != nil {
		return nil, fmt.Errorf("topic name %q: %s", st.Name, ErrorMessage(err))
	}
	id, err := ParseID(st.ID)
	if err != nil {
		return nil, fmt.Errorf("topic %q: %w", st.Name, err)
	}
	if id == ([16]byte{}) {
		return nil, fmt.Errorf("topic %q has the zero ID", st.Name)
	}
	if len(st.Partitions) == 0 {
		return nil, fmt.Errorf("topic %q has no partitions", st.Name)
	}
	t := &Topic{Name: st.Name, ID: id, Internal: IsInternalTopic(st.Name),
		Configs: make(map[string]string, len(st.Configs)), Partitions: make([]Partition, len(st.Partitions))}
	for k, v := range st.Configs {
		t.Configs[k] = v
	}
	for i, sp := range st.Partitions {
		p := Partition{Index: int32(i), Leader: sp.Leader, LeaderEpoch: sp.LeaderEpoch,
			Replicas: sp.Replicas, ISR: sp.ISR}
		if err := checkPartition(p, brokers); err != nil {
			return nil, fmt.Errorf("topic %q partition %d: %w", st.Name, i, err)
		}
		t.Partitions[i] = p
	}
	return t, nil
}

// checkPartition verifies the invariants every stored partition keeps:
// replicas are distinct known brokers, the ISR is a duplicate-free subset
// of them, and the leader, if any, is in the ISR.
func checkPartition(p Partition, brokers map[int32]Broker) error {
	if len(p.Replicas) == 0 {
		return errors.New("no replicas")
	}
	for i, r := range p.Replicas {
		if _, ok := brokers[r]; !ok {
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

// readSnapshot returns the snapshot file's contents, or (nil, nil) if there
// is none yet.
func readSnapshot(dir string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, snapshotFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("metadata: open snapshot: %w", err)
	}
	defer f.Close()
	// Read one byte past the limit so an oversized file is detected without
	// trusting its reported size.
	data, err := io.ReadAll(io.LimitReader(f, maxSnapshotBytes+1))
	if err != nil {
		return nil, fmt.Errorf("metadata: read snapshot: %w", err)
	}
	if len(data) > maxSnapshotBytes {
		return nil, fmt.Errorf("%w: file exceeds %d bytes", ErrCorruptSnapshot, maxSnapshotBytes)
	}
	return data, nil
}

// writeSnapshotFile replaces the snapshot in dir atomically and durably:
// after it returns nil the new contents survive a crash; if it fails or the
// machine crashes midway, the old file is intact (a torn temp file is
// removed at the next open).
func writeSnapshotFile(dir string, data []byte) error {
	tmp := filepath.Join(dir, snapshotTempName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("metadata: write snapshot: %w", err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("metadata: write snapshot: %w", werr)
	}
	if err := os.Rename(tmp, filepath.Join(dir, snapshotFileName)); err != nil {
		return fmt.Errorf("metadata: write snapshot: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("metadata: sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("metadata: sync dir: %w", err)
	}
	return nil
}

// Legacy is what a data directory of the earlier single-node store holds,
// for the Raft store to adopt once: the cluster ID, the topics (IDs,
// configs, replica lists and leader epochs) and the end of the reserved
// producer IDs.
type Legacy struct {
	ClusterID     string
	Topics        []*Topic // by name
	ProducerIDEnd int64
}

// ReadLegacy reads the earlier single-node store's snapshot in dir (its
// meta/ directory) as written by node nodeID. It returns nil, nil when
// there is none; a snapshot that is corrupt (ErrCorruptSnapshot) or was
// written by another node ID is an error, never silently dropped.
func ReadLegacy(dir string, nodeID int32) (*Legacy, error) {
	data, err := readSnapshot(dir)
	if err != nil || data == nil {
		return nil, err
	}
	st, err := decodeSnapshot(data, Broker{NodeID: nodeID})
	if err != nil {
		return nil, err
	}
	l := &Legacy{ClusterID: st.image.ClusterID, ProducerIDEnd: st.producerIDBlockEnd}
	for _, name := range st.image.TopicNames() {
		l.Topics = append(l.Topics, st.image.Topics[name])
	}
	return l, nil
}
