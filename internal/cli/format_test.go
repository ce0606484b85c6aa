package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestParseFrom(t *testing.T) {
	ok := map[string]string{ // input -> kgo's rendering of the offset
		"beginning": kgo.NewOffset().AtStart().String(),
		"earliest":  kgo.NewOffset().AtStart().String(),
		"end":       kgo.NewOffset().AtEnd().String(),
		"latest":    kgo.NewOffset().AtEnd().String(),
		"0":         kgo.NewOffset().At(0).String(),
		"42":        kgo.NewOffset().At(42).String(),
		"-10":       kgo.NewOffset().AtEnd().Relative(-10).String(),
		"@1700":     kgo.NewOffset().AfterMilli(1700).String(),
	}
	for in, want := range ok {
		got, err := parseFrom(in)
		if err != nil || got.String() != want {
			t.Errorf("parseFrom(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "@", "@x", "@-1", "1.5", "begin", "0x10"} {
		if _, err := parseFrom(bad); err == nil {
			t.Errorf("parseFrom(%q) accepted", bad)
		}
	}
}

func TestTemplateErrors(t *testing.T) {
	for _, bad := range []string{"%", "%x", `\`, `\q`, "abc %"} {
		if _, err := parseTemplate(bad); err == nil {
			t.Errorf("parseTemplate(%q) accepted", bad)
		}
	}
}

func TestTemplateRendering(t *testing.T) {
	tpl, err := parseTemplate(`%t|%p|%o|%k|%v|%h|%T|%K|%V\t\\\r\n`)
	if err != nil {
		t.Fatal(err)
	}
	r := &kgo.Record{
		Topic: "tp", Partition: 3, Offset: 99, Key: []byte("k"), Value: nil,
		Timestamp: time.UnixMilli(1234),
		Headers:   []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b"}},
	}
	var buf bytes.Buffer
	tpl.format(&buf, r)
	if want := "tp|3|99|k||a=1,b=|1234|1|-1\t\\\r\n"; buf.String() != want {
		t.Fatalf("got %q want %q", buf.String(), want)
	}
}

// decodeJSONBytes undoes encodeBytes.
func decodeJSONBytes(t *testing.T, s *string, enc string) []byte {
	t.Helper()
	if s == nil {
		return nil
	}
	switch enc {
	case "":
		return []byte(*s)
	case "base64":
		b, err := base64.StdEncoding.DecodeString(*s)
		if err != nil {
			t.Fatalf("bad base64 %q: %v", *s, err)
		}
		return b
	}
	t.Fatalf("unknown encoding %q", enc)
	return nil
}

// FuzzRecordFormat feeds broker-supplied bytes (key, value, header) and a
// user template through the formatters: nothing may panic, and the JSON
// output must be one valid line that decodes back to exactly the input bytes
// (the base64 marker is what makes non-UTF-8 data lossless).
func FuzzRecordFormat(f *testing.F) {
	f.Add("%k=%v\\n", []byte("key"), []byte("value"), "h", []byte("hv"), false)
	f.Add("%h %T %K %V %%", []byte{0xff, 0xfe}, []byte{}, "", []byte(nil), true)
	f.Add("text", []byte("k\n\"<>&"), []byte("\u2028 line sep"), "h\x00", []byte{0xc3}, false)
	f.Fuzz(func(t *testing.T, spec string, key, value []byte, hkey string, hval []byte, nullValue bool) {
		if nullValue {
			value = nil
		}
		r := &kgo.Record{
			Topic: "t", Partition: 1, Offset: 2, Key: key, Value: value, Timestamp: time.UnixMilli(5),
			Headers: []kgo.RecordHeader{{Key: hkey, Value: hval}},
		}
		if tpl, err := newFormatter(spec); err == nil {
			var buf bytes.Buffer
			tpl.format(&buf, r)
		}

		var buf bytes.Buffer
		jsonFormatter{}.format(&buf, r)
		out := buf.Bytes()
		if bytes.Count(out, []byte("\n")) != 1 || out[len(out)-1] != '\n' {
			t.Fatalf("JSON output is not exactly one line: %q", out)
		}
		var jr jsonRecord
		if err := json.Unmarshal(out, &jr); err != nil {
			t.Fatalf("invalid JSON %q: %v", out, err)
		}
		if got := decodeJSONBytes(t, jr.Key, jr.KeyEncoding); !bytes.Equal(got, key) || (got == nil) != (key == nil) {
			t.Fatalf("key %q round-tripped to %q", key, got)
		}
		if got := decodeJSONBytes(t, jr.Value, jr.ValueEncoding); !bytes.Equal(got, value) || (got == nil) != (value == nil) {
			t.Fatalf("value %q round-tripped to %q", value, got)
		}
		if len(jr.Headers) != 1 {
			t.Fatalf("headers %+v", jr.Headers)
		}
		hk := jr.Headers[0].Key
		if got := decodeJSONBytes(t, &hk, jr.Headers[0].KeyEncoding); string(got) != hkey {
			t.Fatalf("header key %q round-tripped to %q", hkey, got)
		}
		if got := decodeJSONBytes(t, jr.Headers[0].Value, jr.Headers[0].ValueEncoding); !bytes.Equal(got, hval) || (got == nil) != (hval == nil) {
			t.Fatalf("header value %q round-tripped to %q", hval, got)
		}
		if !strings.Contains(string(out), `"topic":"t","partition":1,"offset":2,"timestamp":5,`) {
			t.Fatalf("fixed fields wrong: %s", out)
		}
	})
}
