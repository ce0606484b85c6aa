package controller

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/streambus/streambus/internal/metadata"
)

// testdata/legacy/metadata.snapshot was written by the earlier single-node
// build (see test/integration/testdata/legacy-datadir.md).
func TestReadLegacy(t *testing.T) {
	l, err := ReadLegacy(filepath.Join("testdata", "legacy"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if l.ClusterID != "syfL7gWsSOyjGr7rQNZ39Q" || len(l.Topics) != 2 ||
		l.Topics[0].Name != "__consumer_offsets" || len(l.Topics[0].Partitions) != 8 ||
		l.Topics[1].Name != "from-an-earlier-build" || metadata.FormatID(l.Topics[1].ID) != "6425z0K3TxyZxyLr3GC1cg" ||
		len(l.Topics[1].Partitions) != 2 || l.Topics[1].Partitions[1].Replicas[0] != 1 {
		t.Fatalf("read %+v", l)
	}
	if err := applyImport(emptyState(), importFrom(l)); err != nil {
		t.Fatalf("import of what was read: %v", err)
	}

	if l, err := ReadLegacy(t.TempDir(), 1); l != nil || err != nil {
		t.Fatalf("no snapshot: %v, %v", l, err)
	}
	if _, err := ReadLegacy(filepath.Join("testdata", "legacy"), 2); err == nil || errors.Is(err, ErrCorruptLegacy) {
		t.Fatalf("another node's snapshot: %v", err)
	}
	data, err := os.ReadFile(filepath.Join("testdata", "legacy", legacyFileName))
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"empty":     {},
		"truncated": data[:len(data)-1],
		"bit flip":  append(slices.Clone(data[:len(data)-1]), data[len(data)-1]^1),
		"magic":     append([]byte("XBMD"), data[4:]...),
		"not json":  legacyFrame([]byte("{")),
		"unknown":   legacyFrame([]byte(`{"cluster_id":"syfL7gWsSOyjGr7rQNZ39Q","node_id":1,"epoch":1,"x":1}`)),
	} {
		if _, err := decodeLegacy(bad, 1); !errors.Is(err, ErrCorruptLegacy) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzReadLegacy feeds arbitrary bytes as the snapshot file: it must be
// refused or read into topics that the import accepts.
func FuzzReadLegacy(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("testdata", "legacy", legacyFileName)); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkLegacyAccepted(t, data) })
}

// FuzzReadLegacyBody frames arbitrary bytes as a correctly checksummed
// body, so the fuzzer reaches the JSON and consistency checks.
func FuzzReadLegacyBody(f *testing.F) {
	f.Add([]byte(`{"cluster_id":"syfL7gWsSOyjGr7rQNZ39Q","node_id":1,"epoch":1,"producer_id_block_end":0,"written_unix_ms":0,"topics":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) { checkLegacyAccepted(t, legacyFrame(body)) })
}

func checkLegacyAccepted(t *testing.T, data []byte) {
	l, err := decodeLegacy(data, 1)
	if err != nil {
		return
	}
	if !slices.IsSortedFunc(l.Topics, func(a, b *metadata.Topic) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	}) {
		t.Fatal("topics not sorted by name")
	}
	if err := applyImport(emptyState(), importFrom(l)); err != nil {
		t.Fatalf("read but not importable: %v", err)
	}
}

// legacyFrame frames body as a snapshot file of the earlier store.
func legacyFrame(body []byte) []byte {
	out := make([]byte, legacyHeaderSize, legacyHeaderSize+len(body))
	copy(out, legacyMagic)
	binary.BigEndian.PutUint16(out[4:], legacyVersion)
	binary.BigEndian.PutUint32(out[6:], uint32(len(body)))
	binary.BigEndian.PutUint32(out[10:], crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	return append(out, body...)
}
