package controller

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// boltStore is the durable raft.LogStore and raft.StableStore: one bbolt
// file, <Dir>/raft.db. Every write is one bbolt transaction, and bbolt
// fsyncs on commit, so a log entry or a vote is on disk before raft acts on
// it (acknowledges an append, grants a vote).
//
// Layout: bucket "logs" maps the 8-byte big-endian index to an encoded
// entry (see encodeLog); bucket "stable" maps raft's keys to raw values.
type boltStore struct {
	db *bolt.DB
}

var (
	bucketLogs   = []byte("logs")
	bucketStable = []byte("stable")

	// errKeyNotFound must read exactly "not found": hashicorp/raft compares
	// the text to tell a fresh store from a failing one.
	errKeyNotFound = errors.New("not found")
)

var (
	_ raft.LogStore    = (*boltStore)(nil)
	_ raft.StableStore = (*boltStore)(nil)
)

func openBoltStore(path string) (*boltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("controller: open raft log %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketLogs, bucketStable} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("controller: init raft log %s: %w", path, err)
	}
	return &boltStore{db: db}, nil
}

func (s *boltStore) Close() error { return s.db.Close() }

func u64key(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func (s *boltStore) FirstIndex() (uint64, error) {
	var idx uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketLogs).Cursor().First(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

func (s *boltStore) LastIndex() (uint64, error) {
	var idx uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketLogs).Cursor().Last(); k != nil {
			idx = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return idx, err
}

func (s *boltStore) GetLog(index uint64, out *raft.Log) error {
	return s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketLogs).Get(u64key(index))
		if v == nil {
			return raft.ErrLogNotFound
		}
		if err := decodeLog(v, out); err != nil {
			return fmt.Errorf("controller: raft log entry %d: %w", index, err)
		}
		return nil
	})
}

func (s *boltStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *boltStore) StoreLogs(logs []*raft.Log) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		for _, l := range logs {
			if err := b.Put(u64key(l.Index), encodeLog(l)); err != nil {
				return fmt.Errorf("controller: store raft log entry %d: %w", l.Index, err)
			}
		}
		return nil
	})
}

func (s *boltStore) DeleteRange(lo, hi uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLogs)
		// Collect first: deleting while iterating a bbolt cursor skips keys.
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(u64key(lo)); k != nil && binary.BigEndian.Uint64(k) <= hi; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("controller: delete raft log range %d..%d: %w", lo, hi, err)
			}
		}
		return nil
	})
}

func (s *boltStore) Set(key, val []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketStable).Put(key, val)
	})
}

func (s *boltStore) Get(key []byte) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketStable).Get(key)
		if v == nil {
			return errKeyNotFound
		}
		out = append([]byte(nil), v...) // bbolt memory is valid only inside the tx
		return nil
	})
	return out, err
}

func (s *boltStore) SetUint64(key []byte, val uint64) error { return s.Set(key, u64key(val)) }

func (s *boltStore) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("controller: stable key %q holds %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// encodeLog renders a raft entry; all integers big-endian:
//
//	index u64 | term u64 | type u8 | appendedAt unix-nanos i64 |
//	len u32 | data | len u32 | extensions
func encodeLog(l *raft.Log) []byte {
	b := make([]byte, 0, 33+8+len(l.Data)+len(l.Extensions))
	b = binary.BigEndian.AppendUint64(b, l.Index)
	b = binary.BigEndian.AppendUint64(b, l.Term)
	b = append(b, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Data)))
	b = append(b, l.Data...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.Extensions)))
	return append(b, l.Extensions...)
}

var errShortLog = errors.New("truncated entry")

// decodeLog is the inverse of encodeLog. It copies out of v, which bbolt
// owns.
func decodeLog(v []byte, out *raft.Log) error {
	if len(v) < 25+4 {
		return errShortLog
	}
	out.Index = binary.BigEndian.Uint64(v)
	out.Term = binary.BigEndian.Uint64(v[8:])
	out.Type = raft.LogType(v[16])
	at := int64(binary.BigEndian.Uint64(v[17:]))
	out.AppendedAt = time.Time{}
	if at != 0 {
		out.AppendedAt = time.Unix(0, at)
	}
	rest := v[25:]
	var err error
	if out.Data, rest, err = lenPrefixed(rest); err != nil {
		return err
	}
	if out.Extensions, rest, err = lenPrefixed(rest); err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes", len(rest))
	}
	return nil
}

func lenPrefixed(b []byte) (field, rest []byte, err error) {
	if len(b) < 4 {
		return nil, nil, errShortLog
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, errShortLog
	}
	if n == 0 {
		return nil, b[4:], nil
	}
	return append([]byte(nil), b[4:4+n]...), b[4+n:], nil
}
