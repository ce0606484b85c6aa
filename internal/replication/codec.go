package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/wire"
)

// ErrBadResponse is a response frame that does not parse.
var ErrBadResponse = errors.New("replication: malformed response")

// appendRequest appends a request frame: size, header v1 (v2 with an
// empty tag buffer when the request is flexible), body.
func appendRequest(dst []byte, req kmsg.Request, corrID int32, clientID string) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.Key()))
	dst = binary.BigEndian.AppendUint16(dst, uint16(req.GetVersion()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(corrID))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(clientID)))
	dst = append(dst, clientID...)
	if req.IsFlexible() {
		dst = append(dst, 0)
	}
	dst = req.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// readResponse reads one response frame of at most maxSize bytes from r
// and decodes it into resp (whose version must be set).
func readResponse(r io.Reader, corrID int32, resp kmsg.Response, maxSize int64) error {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return err
	}
	n := int64(int32(binary.BigEndian.Uint32(sz[:])))
	if n < 4 || n > maxSize {
		return fmt.Errorf("%w: frame size %d", ErrBadResponse, n)
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(r, frame); err != nil {
		return err
	}
	return decodeResponse(frame, corrID, resp)
}

// decodeResponse decodes a response frame (without its size): the
// correlation ID must match; flexible responses have a tag buffer in
// their header (except ApiVersions).
func decodeResponse(frame []byte, corrID int32, resp kmsg.Response) error {
	if len(frame) < 4 {
		return fmt.Errorf("%w: %d bytes", ErrBadResponse, len(frame))
	}
	if got := int32(binary.BigEndian.Uint32(frame)); got != corrID {
		return fmt.Errorf("%w: correlation ID %d, want %d", ErrBadResponse, got, corrID)
	}
	body := frame[4:]
	if wire.FlexibleResponseHeader(resp) {
		var err error
		if body, err = wire.SkipTags(body); err != nil {
			return fmt.Errorf("%w: header tags: %v", ErrBadResponse, err)
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return fmt.Errorf("%w: %s v%d: %v", ErrBadResponse, kmsg.NameForKey(resp.Key()), resp.GetVersion(), err)
	}
	return nil
}
