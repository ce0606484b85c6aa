package integration

import (
	"crypto/tls"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// closeWithin bounds how long the broker may take to drop a connection
// whose frame it cannot accept: "promptly", with room for a loaded CI host.
const closeWithin = 5 * time.Second

// header builds a request header v1: api key, version, correlation id and a
// nullable client id (null here).
func header(key, version int16, corr int32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	return binary.BigEndian.AppendUint16(b, 0xffff)
}

// sized prefixes body with its length.
func sized(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// TestMalformedFrames throws invalid bytes at the Kafka port, one connection
// per case, and checks both the broker's answer to that connection and that
// an ordinary client is still served afterwards.
func TestMalformedFrames(t *testing.T) {
	b := startBroker(t, brokerOpts{})
	assertServing(t, b)
	var hwm0, peak0 int64
	if b.proc != nil {
		hwm0, peak0 = b.ProcStatus("VmHWM"), b.ProcStatus("VmPeak")
	}
	// checkMemory asserts the broker never allocated what a bogus size
	// asked for: peak resident memory stays small, and so does peak address
	// space (a 2 GiB make() shows there even if the pages stay untouched).
	checkMemory := func(t *testing.T) {
		if b.proc == nil {
			return
		}
		hwm, peak := b.ProcStatus("VmHWM"), b.ProcStatus("VmPeak")
		t.Logf("VmHWM %d MiB (+%d), VmPeak %d MiB (+%d)", hwm>>20, (hwm-hwm0)>>20, peak>>20, (peak-peak0)>>20)
		if hwm-hwm0 > 64<<20 {
			t.Errorf("peak RSS grew by %d MiB after a bogus frame size", (hwm-hwm0)>>20)
		}
		if peak-peak0 > 1<<30 {
			t.Errorf("peak virtual memory grew by %d MiB after a bogus frame size: the broker allocated the frame", (peak-peak0)>>20)
		}
	}

	cases := []struct {
		name string
		run  func(t *testing.T)
	}{
		// Sizes first, while the memory baseline is fresh.
		{"size=0x7fffffff", func(t *testing.T) {
			rc := dialRaw(t, b)
			rc.mustWrite([]byte{0x7f, 0xff, 0xff, 0xff, 0, 18, 0, 0})
			defer checkMemory(t)
			rc.expectClosed(closeWithin)
		}},
		{"size=socket.request.max.bytes+1", func(t *testing.T) {
			rc := dialRaw(t, b)
			rc.mustWrite(binary.BigEndian.AppendUint32(nil, 104857600+1))
			defer checkMemory(t)
			rc.expectClosed(closeWithin)
		}},
		{"TLS ClientHello", func(t *testing.T) {
			// A TLS record header read as a Kafka size is ~369 MB.
			defer checkMemory(t)
			rc := dialRaw(t, b)
			rc.c.SetDeadline(time.Now().Add(closeWithin))
			err := tls.Client(rc.c, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true}).Handshake()
			if err == nil {
				t.Fatal("TLS handshake with a plaintext port succeeded")
			}
			if isTimeout(err) {
				t.Fatalf("broker did not close the connection within %v of a TLS ClientHello: %v", closeWithin, err)
			}
		}},
		{"size=-1", func(t *testing.T) {
			rc := dialRaw(t, b)
			rc.mustWrite([]byte{0xff, 0xff, 0xff, 0xff, 0, 18, 0, 0})
			rc.expectClosed(closeWithin)
		}},
		{"size=math.MinInt32", func(t *testing.T) {
			rc := dialRaw(t, b)
			rc.mustWrite([]byte{0x80, 0, 0, 0})
			rc.expectClosed(closeWithin)
		}},
		{"size=0", func(t *testing.T) {
			rc := dialRaw(t, b)
			rc.mustWrite([]byte{0, 0, 0, 0})
			rc.expectClosed(closeWithin)
		}},
		{"truncated header: key and version only", func(t *testing.T) {
			rc := dialRaw(t, b)
			rc.mustWrite(sized(header(18, 0, 1)[:4]))
			rc.expectClosed(closeWithin)
		}},
		{"truncated header: half a correlation id", func(t *testing.T) {
			rc := dialRaw(t, b)
			rc.mustWrite(sized(header(3, 1, 1)[:6]))
			rc.expectClosed(closeWithin)
		}},
		{"truncated header: client id longer than the frame", func(t *testing.T) {
			rc := dialRaw(t, b)
			h := header(3, 1, 1)
			binary.BigEndian.PutUint16(h[8:], 1000)
			rc.mustWrite(sized(append(h, "short"...)))
			rc.expectClosed(closeWithin)
		}},
		{"unknown api key", func(t *testing.T) {
			rc := dialRaw(t, b)
			rc.mustWrite(sized(header(9999, 0, 1)))
			rc.expectClosed(closeWithin)
		}},
		{"negative api key", func(t *testing.T) {
			rc := dialRaw(t, b)
			rc.mustWrite(sized(header(-1, 0, 1)))
			rc.expectClosed(closeWithin)
		}},
		{"Metadata at an unsupported version", func(t *testing.T) {
			rc := dialRaw(t, b)
			rc.mustWrite(sized(header(3, 999, 1)))
			rc.expectClosed(closeWithin)
		}},
		{"ApiVersions at an unsupported version", func(t *testing.T) {
			testApiVersionsUnsupported(t, b)
		}},
		{"Produce: batch length beyond the records", func(t *testing.T) {
			batch := recordBatch(time.Now().UnixMilli())
			binary.BigEndian.PutUint32(batch[8:], uint32(len(batch)-12+100))
			// Kafka answers INVALID_RECORD (87) when no whole batch is
			// left; CORRUPT_MESSAGE (2) is the other honest answer.
			testBadProduce(t, b, batch, 2, 87)
		}},
		{"Produce: batch length short of the records", func(t *testing.T) {
			batch := recordBatch(time.Now().UnixMilli(), time.Now().UnixMilli())
			binary.BigEndian.PutUint32(batch[8:], uint32(len(batch)-12-10))
			testBadProduce(t, b, batch, 2, 87)
		}},
		{"Produce: batch length negative", func(t *testing.T) {
			batch := recordBatch(time.Now().UnixMilli())
			binary.BigEndian.PutUint32(batch[8:], 0xfffffff0)
			testBadProduce(t, b, batch, 2, 87)
		}},
		{"Produce: garbage CRC", func(t *testing.T) {
			batch := recordBatch(time.Now().UnixMilli())
			batch[17] ^= 0xff
			batch[20] ^= 0x5a
			testBadProduce(t, b, batch, 2)
		}},
		{"Produce: record count 2^31-1 with a valid CRC", func(t *testing.T) {
			batch := recordBatch(time.Now().UnixMilli())
			binary.BigEndian.PutUint32(batch[57:], 0x7fffffff)
			fixCRC(batch)
			// Kafka: INVALID_RECORD for a declared count that does not
			// match; CORRUPT_MESSAGE is as good.
			testBadProduce(t, b, batch, 2, 87)
		}},
	}
	for _, c := range cases {
		passed := t.Run(c.name, func(t *testing.T) {
			c.run(t)
			assertServing(t, b)
		})
		// A crash looks like a closed connection to the case itself, so
		// check for it here; restart so that later cases still test
		// something. A dying process may take a moment to be reaped.
		if b.proc != nil && !passed {
			select {
			case <-b.proc.exited:
			case <-time.After(2 * time.Second):
			}
		}
		if b.proc != nil && b.exited() {
			t.Errorf("broker process died during %q: %v", c.name, b.proc.waitErr)
			b.Restart()
			hwm0, peak0 = b.ProcStatus("VmHWM"), b.ProcStatus("VmPeak")
		}
	}
}

// testApiVersionsUnsupported: per KIP-511 a too-new ApiVersions request gets
// a v0 body with UNSUPPORTED_VERSION (35) and the broker's ranges, and the
// connection stays open for the client to retry at a version it knows.
func testApiVersionsUnsupported(t *testing.T, b *broker) {
	rc := dialRaw(t, b)
	// Flexible header (v2) and a v3-shaped body, as a client at a newer
	// version would send them.
	rc.corr++
	body := header(18, 127, rc.corr)
	body = append(body, 0)       // empty header tags
	body = append(body, 1, 1, 0) // empty software name and version, no tags
	rc.mustWrite(sized(body))
	buf, err := rc.readFrame(closeWithin)
	if err != nil {
		t.Fatalf("ApiVersions v127: no response: %v", err)
	}
	if corr := int32(binary.BigEndian.Uint32(buf)); corr != rc.corr {
		t.Fatalf("correlation id %d, want %d", corr, rc.corr)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if err := resp.ReadFrom(buf[4:]); err != nil {
		t.Fatalf("ApiVersions v127 response is not a v0 body: %v (% x)", err, buf[4:])
	}
	if resp.ErrorCode != 35 {
		t.Errorf("error code %d, want 35 (UNSUPPORTED_VERSION)", resp.ErrorCode)
	}
	i := slices.IndexFunc(resp.ApiKeys, func(k kmsg.ApiVersionsResponseApiKey) bool { return k.ApiKey == 18 })
	if i < 0 {
		t.Fatalf("response lists no ApiVersions range; keys: %+v", resp.ApiKeys)
	}
	if k := resp.ApiKeys[i]; k.MinVersion != 0 || k.MaxVersion < 3 {
		t.Errorf("ApiVersions range %d-%d, want 0 to at least 3", k.MinVersion, k.MaxVersion)
	}
	// The client retries on the same connection at the highest version the
	// broker named.
	retry := kmsg.NewPtrApiVersionsRequest()
	retry.Version = min(resp.ApiKeys[i].MaxVersion, 4)
	retry.ClientSoftwareName = "streambus-integration"
	retry.ClientSoftwareVersion = "1.0"
	if r := rc.roundTrip(retry).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 || len(r.ApiKeys) == 0 {
		t.Errorf("ApiVersions v%d retry: error %d, %d keys", retry.Version, r.ErrorCode, len(r.ApiKeys))
	}
}

// testBadProduce sends batch in a Produce request to a fresh topic. The
// broker must answer with one of the wanted partition error codes, or close
// the connection; either way nothing may be appended.
func testBadProduce(t *testing.T, b *broker, batch []byte, wantCodes ...int16) {
	topic := createTopic(t, b, 1)
	rc := dialRaw(t, b)
	req := produceRequest(topic, batch)
	if err := rc.write(rc.frame(req)); err != nil {
		t.Logf("write failed (connection already closed): %v", err)
	} else if resp, err := rc.readResponse(req); err != nil {
		t.Logf("no Produce response, connection dropped: %v", err)
		if isTimeout(err) {
			t.Fatalf("broker neither answered nor closed the connection within 10s")
		}
	} else {
		pr := resp.(*kmsg.ProduceResponse)
		if len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 {
			t.Fatalf("malformed Produce response %+v", pr)
		}
		code := pr.Topics[0].Partitions[0].ErrorCode
		if !slices.Contains(wantCodes, code) {
			t.Errorf("Produce error code %d, want one of %v", code, wantCodes)
		}
	}
	adm := kadm.NewClient(newKgo(t, b))
	ends, err := adm.ListEndOffsets(testCtx(t, 10*time.Second), topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	if lo, _ := ends.Lookup(topic, 0); lo.Offset != 0 {
		t.Errorf("a rejected batch was appended: end offset %d, want 0", lo.Offset)
	}
}

// TestStalledRequest: a client that sends part of a request and stops is
// dropped after socket.request.read.timeout.ms while others are served.
func TestStalledRequest(t *testing.T) {
	b := startBroker(t, brokerOpts{Env: []string{
		"STREAMBUS_SOCKET_REQUEST_READ_TIMEOUT_MS=1000",
		"STREAMBUS_CONNECTIONS_MAX_IDLE_MS=600000",
	}})
	stall := append(binary.BigEndian.AppendUint32(nil, 100), header(18, 0, 1)...) // 10 of 100 bytes
	for _, c := range []struct {
		name  string
		first bool   // complete one request before stalling
		data  []byte // what is sent before the stall
	}{
		{"10 of 100 promised bytes", false, stall},
		{"10 of 100 bytes after a complete request", true, stall},
		// The read timeout runs from a request's first byte, so half a
		// size field is not held until connections.max.idle.ms.
		{"2 of the 4 size bytes", false, stall[:2]},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := dialRaw(t, b)
			if c.first {
				req := kmsg.NewPtrApiVersionsRequest()
				req.Version = 0
				rc.roundTrip(req)
			}
			rc.mustWrite(c.data)
			start := time.Now()
			// Other clients are served while this one stalls.
			assertServing(t, b)
			rc.expectClosed(20 * time.Second)
			t.Logf("stalled connection closed after about %v", time.Since(start).Round(100*time.Millisecond))
		})
	}
}

// TestIdleConnection: a connection with no request in flight is closed
// after connections.max.idle.ms; one that keeps sending requests is not.
func TestIdleConnection(t *testing.T) {
	b := startBroker(t, brokerOpts{Env: []string{"STREAMBUS_CONNECTIONS_MAX_IDLE_MS=1000"}})
	apiVersions := func() kmsg.Request {
		req := kmsg.NewPtrApiVersionsRequest()
		req.Version = 3
		req.ClientSoftwareName = "streambus-integration"
		req.ClientSoftwareVersion = "1.0"
		return req
	}
	t.Run("idle after a request", func(t *testing.T) {
		rc := dialRaw(t, b)
		rc.roundTrip(apiVersions())
		rc.expectClosed(20 * time.Second)
	})
	t.Run("never sent anything", func(t *testing.T) {
		rc := dialRaw(t, b)
		rc.expectClosed(20 * time.Second)
	})
	t.Run("busy connection stays open", func(t *testing.T) {
		rc := dialRaw(t, b)
		// Three idle periods of requests every 250 ms, on one connection.
		for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			rc.roundTrip(apiVersions())
		}
	})
	assertServing(t, b)
}
