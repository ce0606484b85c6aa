package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func allVersions(key int16) (VersionRange, bool) {
	r := kmsg.RequestForKey(key)
	if r == nil {
		return VersionRange{}, false
	}
	return VersionRange{0, r.MaxVersion()}, true
}

// frame encodes req as a client would, without the size prefix.
func frame(req kmsg.Request, corr int32, client string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len(client)))
	b = append(b, client...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	return req.AppendTo(b)
}

func TestDecodeRoundTrip(t *testing.T) {
	for _, v := range []int16{0, 3, 8, 11} {
		m := kmsg.NewPtrMetadataRequest()
		m.SetVersion(v)
		tp := kmsg.NewMetadataRequestTopic()
		tp.Topic = kmsg.StringPtr("orders")
		m.Topics = append(m.Topics, tp)
		req, err := Decode(frame(m, 42, "cli"), allVersions)
		if err != nil {
			t.Fatalf("v%d: %v", v, err)
		}
		got := req.Msg.(*kmsg.MetadataRequest)
		if req.CorrelationID != 42 || *req.ClientID != "cli" || len(got.Topics) != 1 || *got.Topics[0].Topic != "orders" {
			t.Fatalf("v%d: decoded %+v %+v", v, req.Header, got)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	ok := frame(kmsg.NewPtrApiVersionsRequest(), 1, "x")
	cases := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"short", []byte{0, 18, 0}, ErrMalformed},
		{"unknown key", append([]byte{0x7f, 0x00}, ok[2:]...), ErrUnknownKey},
		{"client id longer than frame", append(append([]byte{}, ok[:8]...), 0x10, 0x00, 'a'), ErrMalformed},
		{"version too new", append([]byte{0, 18, 0, 99}, ok[4:]...), ErrUnsupportedVersion},
	}
	for _, c := range cases {
		if _, err := Decode(c.frame, allVersions); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func TestReadSize(t *testing.T) {
	for _, c := range []struct {
		in   uint32
		want error
	}{{0xffffffff, ErrNegativeSize}, {0x16030100, ErrFrameTooLarge}, {3, ErrMalformed}, {100, nil}} {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], c.in)
		_, err := ReadSize(bytes.NewReader(b[:]), 1<<20)
		if !errors.Is(err, c.want) {
			t.Errorf("size %#x: got %v, want %v", c.in, err, c.want)
		}
	}
}

func TestApiVersionsResponseHeaderIsV0(t *testing.T) {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(3)
	b := AppendResponse(nil, 7, resp)
	// size | corr | body: body starts with error code int16 0, no tag byte.
	if got := binary.BigEndian.Uint32(b[4:]); got != 7 {
		t.Fatalf("correlation %d", got)
	}
	if b[8] != 0 || b[9] != 0 || int(binary.BigEndian.Uint32(b)) != len(b)-4 {
		t.Fatalf("bad frame % x", b)
	}
	meta := kmsg.NewPtrMetadataResponse()
	meta.SetVersion(12)
	mb := AppendResponse(nil, 7, meta)
	if len(mb) != 4+4+1+len(meta.AppendTo(nil)) {
		t.Fatalf("flexible response header missing its tag buffer")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(frame(kmsg.NewPtrApiVersionsRequest(), 1, "x"))
	p := kmsg.NewPtrProduceRequest()
	p.SetVersion(9)
	f.Add(frame(p, 2, "producer"))
	fr := kmsg.NewPtrFetchRequest()
	fr.SetVersion(12)
	f.Add(frame(fr, 3, ""))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = Decode(b, allVersions)
	})
}

func FuzzReadSize(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ReadSize(bytes.NewReader(b), 1<<20)
		if err == nil && (n < 8 || n > 1<<20) {
			t.Fatalf("accepted size %d", n)
		}
	})
}
