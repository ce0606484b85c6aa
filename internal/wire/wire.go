// Package wire frames Kafka requests and responses on a byte stream.
//
// A request frame is a big-endian int32 size followed by that many bytes:
//
//	int16  api_key
//	int16  api_version
//	int32  correlation_id
//	int16  client_id length (-1 = null), client_id bytes   (header v1+)
//	tagged fields (uvarint count, then tag/size/bytes)    (header v2: flexible requests)
//	body   (decoded by kmsg)
//
// A response frame is size | correlation_id | [empty tag buffer 0x00 when the
// response is flexible, except ApiVersions which always uses header v0] | body.
//
// Everything here reads untrusted bytes: sizes are checked against limits
// and against the bytes present before anything is allocated or sliced.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Errors from framing and header parsing. Any of them ends the connection,
// except ErrUnsupportedVersion on ApiVersions, which the broker answers
// (KIP-511).
var (
	ErrFrameTooLarge      = errors.New("wire: frame larger than socket.request.max.bytes")
	ErrNegativeSize       = errors.New("wire: negative frame size")
	ErrMalformed          = errors.New("wire: malformed request")
	ErrUnknownKey         = errors.New("wire: unknown api key")
	ErrUnsupportedVersion = errors.New("wire: unsupported api version")
)

// ReadSize reads the 4-byte frame size and checks it against max before
// the caller allocates anything.
func ReadSize(r io.Reader, max int32) (int32, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	n := int32(binary.BigEndian.Uint32(b[:]))
	switch {
	case n < 0:
		return 0, fmt.Errorf("%w: %d", ErrNegativeSize, n)
	case n > max:
		return 0, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, n, max)
	case n < 8:
		return 0, fmt.Errorf("%w: frame of %d bytes cannot hold a request header", ErrMalformed, n)
	}
	return n, nil
}

// Header is a parsed request header.
type Header struct {
	Key           int16
	Version       int16
	CorrelationID int32
	ClientID      *string
}

// VersionRange is the versions of one API the broker serves.
type VersionRange struct{ Min, Max int16 }

// Request is a decoded request with its header.
type Request struct {
	Header
	Msg kmsg.Request
}

// Decode parses a whole frame (without its size prefix). supported gives
// the served range of an api key (ok false for keys the broker does not
// serve). When the version is out of range, Decode returns the header and
// ErrUnsupportedVersion so that ApiVersions can be answered per KIP-511; the
// body is not decoded then.
func Decode(frame []byte, supported func(key int16) (VersionRange, bool)) (Request, error) {
	var req Request
	if len(frame) < 8 {
		return req, fmt.Errorf("%w: short header", ErrMalformed)
	}
	req.Key = int16(binary.BigEndian.Uint16(frame[0:]))
	req.Version = int16(binary.BigEndian.Uint16(frame[2:]))
	req.CorrelationID = int32(binary.BigEndian.Uint32(frame[4:]))
	rest := frame[8:]

	rng, ok := supported(req.Key)
	msg := kmsg.RequestForKey(req.Key)
	if !ok || msg == nil {
		return req, fmt.Errorf("%w: %d", ErrUnknownKey, req.Key)
	}
	clientID, rest, err := readNullableString(rest)
	if err != nil {
		return req, err
	}
	req.ClientID = clientID
	if req.Version < rng.Min || req.Version > rng.Max || req.Version > msg.MaxVersion() {
		return req, fmt.Errorf("%w: %s v%d (serving v%d-v%d)", ErrUnsupportedVersion, kmsg.NameForKey(req.Key), req.Version, rng.Min, rng.Max)
	}
	msg.SetVersion(req.Version)
	if msg.IsFlexible() {
		if rest, err = SkipTags(rest); err != nil {
			return req, err
		}
	}
	if err := msg.ReadFrom(rest); err != nil {
		return req, fmt.Errorf("%w: %s v%d: %v", ErrMalformed, kmsg.NameForKey(req.Key), req.Version, err)
	}
	req.Msg = msg
	return req, nil
}

func readNullableString(b []byte) (*string, []byte, error) {
	if len(b) < 2 {
		return nil, nil, fmt.Errorf("%w: short client id", ErrMalformed)
	}
	n := int16(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n < 0 {
		return nil, b, nil
	}
	if int(n) > len(b) {
		return nil, nil, fmt.Errorf("%w: client id of %d bytes with %d left", ErrMalformed, n, len(b))
	}
	s := string(b[:n])
	return &s, b[n:], nil
}

// SkipTags skips a tagged-field section, checking every size against the
// bytes left.
func SkipTags(b []byte) ([]byte, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, err
	}
	for i := uint64(0); i < n; i++ {
		if _, b, err = uvarint(b); err != nil { // tag
			return nil, err
		}
		var size uint64
		if size, b, err = uvarint(b); err != nil {
			return nil, err
		}
		if size > uint64(len(b)) {
			return nil, fmt.Errorf("%w: tagged field of %d bytes with %d left", ErrMalformed, size, len(b))
		}
		b = b[size:]
	}
	return b, nil
}

func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 || v > 1<<31 {
		return 0, nil, fmt.Errorf("%w: bad uvarint", ErrMalformed)
	}
	return v, b[n:], nil
}

// FlexibleResponseHeader reports whether the response header carries a tag
// buffer: flexible responses do, except ApiVersions (always header v0).
func FlexibleResponseHeader(resp kmsg.Response) bool {
	return resp.IsFlexible() && resp.Key() != kmsg.ApiVersions.Int16()
}

// AppendResponse appends a whole response frame (size prefix included).
func AppendResponse(dst []byte, correlationID int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlationID))
	if FlexibleResponseHeader(resp) {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
