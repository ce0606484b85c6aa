package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordFormatter writes one consumed record to w.
type recordFormatter interface {
	format(w *bytes.Buffer, r *kgo.Record)
}

// formatHelp documents --format; kept next to the parser it describes.
const formatHelp = `output format:
  text     the value, one record per line
  json     one JSON object per line: topic, partition, offset, timestamp
           (Unix ms), key, value, headers [{key, value}]; a null key/value is
           null; bytes that are not valid UTF-8 are base64 and flagged by
           "key_encoding"/"value_encoding": "base64" (also inside headers)
  FORMAT   a kcat-like template: %t topic, %p partition, %o offset, %k key,
           %v value, %h headers (k=v,k=v), %T timestamp (Unix ms), %K key
           length, %V value length (-1 for null), %% a percent sign; escapes
           \n \t \r \\. No newline is added: end FORMAT with \n`

// newFormatter parses --format.
func newFormatter(spec string) (recordFormatter, error) {
	switch spec {
	case "text":
		return textFormatter{}, nil
	case "json":
		return jsonFormatter{}, nil
	}
	if !strings.ContainsAny(spec, `%\`) {
		return nil, fmt.Errorf("--format: %q is neither text, json nor a template with %%-directives", spec)
	}
	return parseTemplate(spec)
}

type textFormatter struct{}

func (textFormatter) format(w *bytes.Buffer, r *kgo.Record) {
	w.Write(r.Value)
	w.WriteByte('\n')
}

// jsonRecord is the --format json shape. Field order is part of the output
// contract (stable for golden comparisons and line-oriented tools).
type jsonRecord struct {
	Topic         string       `json:"topic"`
	Partition     int32        `json:"partition"`
	Offset        int64        `json:"offset"`
	Timestamp     int64        `json:"timestamp"`
	Key           *string      `json:"key"`
	KeyEncoding   string       `json:"key_encoding,omitempty"`
	Value         *string      `json:"value"`
	ValueEncoding string       `json:"value_encoding,omitempty"`
	Headers       []jsonHeader `json:"headers"`
}

type jsonHeader struct {
	Key           string  `json:"key"`
	KeyEncoding   string  `json:"key_encoding,omitempty"`
	Value         *string `json:"value"`
	ValueEncoding string  `json:"value_encoding,omitempty"`
}

// encodeBytes renders b as a JSON-able string: itself when valid UTF-8,
// otherwise base64 with encoding "base64". nil stays nil (Kafka null).
func encodeBytes(b []byte) (*string, string) {
	if b == nil {
		return nil, ""
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s, "base64"
}

type jsonFormatter struct{}

func (jsonFormatter) format(w *bytes.Buffer, r *kgo.Record) {
	jr := jsonRecord{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: r.Timestamp.UnixMilli(),
		Headers:   make([]jsonHeader, 0, len(r.Headers)),
	}
	jr.Key, jr.KeyEncoding = encodeBytes(r.Key)
	jr.Value, jr.ValueEncoding = encodeBytes(r.Value)
	for _, h := range r.Headers {
		jh := jsonHeader{}
		// Header keys are strings on the wire but not checked as UTF-8;
		// never null, so a nil result cannot occur for them.
		k, kenc := encodeBytes([]byte(h.Key))
		jh.Key, jh.KeyEncoding = *k, kenc
		jh.Value, jh.ValueEncoding = encodeBytes(h.Value)
		jr.Headers = append(jr.Headers, jh)
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	// Encoding a struct of strings and integers cannot fail.
	_ = enc.Encode(jr)
}

// template is a compiled FORMAT: literal text and directives in order.
type template []templatePart

type templatePart struct {
	literal string
	verb    byte // 0 for a literal
}

// parseTemplate compiles a kcat-like format string. Unknown directives and
// escapes are errors, so a typo is reported instead of printed forever.
func parseTemplate(spec string) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t = append(t, templatePart{literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(spec); i++ {
		c := spec[i]
		switch c {
		case '%', '\\':
			if i+1 >= len(spec) {
				return nil, fmt.Errorf("--format: %q ends with a lone %q", spec, c)
			}
			i++
			n := spec[i]
			if c == '\\' {
				switch n {
				case 'n':
					lit.WriteByte('\n')
				case 't':
					lit.WriteByte('\t')
				case 'r':
					lit.WriteByte('\r')
				case '\\':
					lit.WriteByte('\\')
				default:
					return nil, fmt.Errorf("--format: unknown escape \\%c (want \\n \\t \\r \\\\)", n)
				}
				continue
			}
			switch n {
			case '%':
				lit.WriteByte('%')
			case 't', 'p', 'o', 'k', 'v', 'h', 'T', 'K', 'V':
				flush()
				t = append(t, templatePart{verb: n})
			default:
				return nil, fmt.Errorf("--format: unknown directive %%%c (want %%t %%p %%o %%k %%v %%h %%T %%K %%V %%%%)", n)
			}
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return t, nil
}

func (t template) format(w *bytes.Buffer, r *kgo.Record) {
	for _, p := range t {
		switch p.verb {
		case 0:
			w.WriteString(p.literal)
		case 't':
			w.WriteString(r.Topic)
		case 'p':
			w.WriteString(strconv.FormatInt(int64(r.Partition), 10))
		case 'o':
			w.WriteString(strconv.FormatInt(r.Offset, 10))
		case 'k':
			w.Write(r.Key)
		case 'v':
			w.Write(r.Value)
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					w.WriteByte(',')
				}
				w.WriteString(h.Key)
				w.WriteByte('=')
				w.Write(h.Value)
			}
		case 'T':
			w.WriteString(strconv.FormatInt(r.Timestamp.UnixMilli(), 10))
		case 'K':
			w.WriteString(strconv.Itoa(nullableLen(r.Key)))
		case 'V':
			w.WriteString(strconv.Itoa(nullableLen(r.Value)))
		}
	}
}

func nullableLen(b []byte) int {
	if b == nil {
		return -1
	}
	return len(b)
}

// writeAll writes buf to w and resets it.
func writeAll(w io.Writer, buf *bytes.Buffer) error {
	_, err := w.Write(buf.Bytes())
	buf.Reset()
	return err
}
