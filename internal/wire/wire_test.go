package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/frames/server")

// ---------------------------------------------------------------------------
// Test helpers

// msgHex parses space-separated hex bytes such as "00 01 ff".
func msgHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// refJSON is the JSON token a client writes for r.
func refJSON(r Ref) []byte {
	if r == nil {
		return []byte("null")
	}
	return r
}

// msgEqual compares two messages field by field, refs byte for byte.
func msgEqual(a, b Message) bool {
	return bytes.Equal(a.JoinRef, b.JoinRef) && (a.JoinRef == nil) == (b.JoinRef == nil) &&
		bytes.Equal(a.Ref, b.Ref) && (a.Ref == nil) == (b.Ref == nil) &&
		a.Topic == b.Topic && a.Event == b.Event &&
		bytes.Equal(a.Payload.Data, b.Payload.Data) && a.Payload.Binary == b.Payload.Binary
}

func fmtMsg(m Message) string {
	return fmt.Sprintf("{JoinRef:%q Ref:%q Topic:%q Event:%q Payload:%q Binary:%v}",
		[]byte(m.JoinRef), []byte(m.Ref), m.Topic, m.Event, m.Payload.Data, m.Payload.Binary)
}

// ---------------------------------------------------------------------------
// Decoding: valid frames

type decodeCase struct {
	name  string
	frame string
	want  Message
}

func jsonMsg(joinRef, ref, topic, event, payload string) Message {
	m := Message{Topic: topic, Event: event, Payload: Payload{Data: []byte(payload)}}
	if joinRef != "" {
		m.JoinRef = Ref(joinRef)
	}
	if ref != "" {
		m.Ref = Ref(ref)
	}
	return m
}

var (
	long255 = strings.Repeat("a", 255)
	long256 = strings.Repeat("a", 256)
	long300 = strings.Repeat("a", 300)
)

// nested returns a payload nested depth levels deep: [[...[]...]].
func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

var v2TextCases = []decodeCase{
	{"join", `["3","3","room:lobby","phx_join",{"token":"x"}]`, jsonMsg(`"3"`, `"3"`, "room:lobby", "phx_join", `{"token":"x"}`)},
	{"heartbeat", `[null,"4","phoenix","heartbeat",{}]`, jsonMsg("", `"4"`, "phoenix", "heartbeat", `{}`)},
	{"nshafer heartbeat", `["","5","phoenix","heartbeat",null]`, jsonMsg(`""`, `"5"`, "phoenix", "heartbeat", `null`)},
	{"number refs", `[1,12,"t","e",{}]`, jsonMsg(`1`, `12`, "t", "e", `{}`)},
	{"exponent ref", `[null,1e3,"t","e",{}]`, jsonMsg("", `1e3`, "t", "e", `{}`)},
	{"big number ref", `[null,123456789012345678901234567890,"t","e",{}]`, jsonMsg("", `123456789012345678901234567890`, "t", "e", `{}`)},
	{"negative float ref", `[-0.5E+10,-0,"t","e",{}]`, jsonMsg(`-0.5E+10`, `-0`, "t", "e", `{}`)},
	{"non-numeric string ref", `["abc","x y\"z\u00e9","t","e",{}]`, jsonMsg(`"abc"`, `"x y\"z\u00e9"`, "t", "e", `{}`)},
	{"whitespace", " \t\r\n[ \"1\" , \"2\" ,\n\"t\" , \"e\" , { \"a\" : [ 1 , 2 ] } ] \n", jsonMsg(`"1"`, `"2"`, "t", "e", `{ "a" : [ 1 , 2 ] }`)},
	{"extra elements", `["1","2","t","e",{},"extra",[1,{"x":null}],true]`, jsonMsg(`"1"`, `"2"`, "t", "e", `{}`)},
	{"payload null", `["1","2","t","e",null]`, jsonMsg(`"1"`, `"2"`, "t", "e", `null`)},
	{"payload number", `["1","2","t","e",-1.5e-3]`, jsonMsg(`"1"`, `"2"`, "t", "e", `-1.5e-3`)},
	{"payload string", `["1","2","t","e","s\"\\\/\b\f\n\r\t\u0041"]`, jsonMsg(`"1"`, `"2"`, "t", "e", `"s\"\\\/\b\f\n\r\t\u0041"`)},
	{"payload array", `["1","2","t","e",[true,false,null,0,"",{}]]`, jsonMsg(`"1"`, `"2"`, "t", "e", `[true,false,null,0,"",{}]`)},
	{"escaped topic", `["1","2","room:\u00e9\n\"","\ud83d\ude00",{}]`, jsonMsg(`"1"`, `"2"`, "room:é\n\"", "😀", `{}`)},
	{"raw utf8 topic", `["1","2","room:é😀","e",{}]`, jsonMsg(`"1"`, `"2"`, "room:é😀", "e", `{}`)},
	{"escaped NUL in topic", `["1","2","a\u0000b","e",{}]`, jsonMsg(`"1"`, `"2"`, "a\x00b", "e", `{}`)},
	{"empty topic and event", `["1","2","","",{}]`, jsonMsg(`"1"`, `"2"`, "", "", `{}`)},
	{"topic 255 bytes", `["1","2","` + long255 + `","e",{}]`, jsonMsg(`"1"`, `"2"`, long255, "e", `{}`)},
	{"ref 255 bytes", `["` + long255 + `",` + strings.Repeat("9", 255) + `,"t","e",{}]`, jsonMsg(`"`+long255+`"`, strings.Repeat("9", 255), "t", "e", `{}`)},
	{"escaped ref 255 bytes decoded", `[null,"` + strings.Repeat(`\u0061`, 255) + `","t","e",{}]`, jsonMsg("", `"`+strings.Repeat(`\u0061`, 255)+`"`, "t", "e", `{}`)},
	{"depth 64", `["1","2","t","e",` + nested(64) + `]`, jsonMsg(`"1"`, `"2"`, "t", "e", nested(64))},
	{"depth 64 objects", `["1","2","t","e",` + strings.Repeat(`{"a":`, 63) + `{}` + strings.Repeat(`}`, 63) + `]`, jsonMsg(`"1"`, `"2"`, "t", "e", strings.Repeat(`{"a":`, 63)+`{}`+strings.Repeat(`}`, 63))},
	{"escaped lone-surrogate in payload kept raw", `["1","2","t","e",{"a":"\ud800"}]`, jsonMsg(`"1"`, `"2"`, "t", "e", `{"a":"\ud800"}`)},
}

func TestDecodeV2Text(t *testing.T) {
	t.Parallel()
	for _, tc := range v2TextCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := V2.Decode([]byte(tc.frame), false)
			if err != nil {
				t.Fatalf("decode(%q): %v", tc.frame, err)
			}
			if !msgEqual(got, tc.want) {
				t.Fatalf("decode(%q)\n got %s\nwant %s", tc.frame, fmtMsg(got), fmtMsg(tc.want))
			}
		})
	}
}

var v1Cases = []decodeCase{
	{"join", `{"topic":"room:lobby","event":"phx_join","payload":{"token":"x"},"ref":"1","join_ref":"1"}`, jsonMsg(`"1"`, `"1"`, "room:lobby", "phx_join", `{"token":"x"}`)},
	{"no join_ref", `{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"2"}`, jsonMsg("", `"2"`, "phoenix", "heartbeat", `{}`)},
	{"null join_ref and ref", `{"topic":"t","event":"e","payload":{},"ref":null,"join_ref":null}`, jsonMsg("", "", "t", "e", `{}`)},
	{"number refs", `{"ref":12,"join_ref":1e3,"payload":[1],"event":"e","topic":"t"}`, jsonMsg(`1e3`, `12`, "t", "e", `[1]`)},
	{"whitespace", " {\n \"topic\" : \"t\" ,\t\"event\":\"e\", \"payload\" : { } , \"ref\" : \"1\" } ", jsonMsg("", `"1"`, "t", "e", `{ }`)},
	{"unknown keys ignored", `{"x":{"a":[1,2,{"b":null}]},"topic":"t","event":"e","payload":{},"ref":"1","Topic":"other","TOPIC":1,"x":2}`, jsonMsg("", `"1"`, "t", "e", `{}`)},
	{"escaped key", `{"top\u0069c":"t","event":"e","payload":{},"ref":"1"}`, jsonMsg("", `"1"`, "t", "e", `{}`)},
	{"escaped topic", `{"topic":"\u00e9\ud83d\ude00","event":"e","payload":"p","ref":"1"}`, jsonMsg("", `"1"`, "é😀", "e", `"p"`)},
	{"payload depth 64", `{"topic":"t","event":"e","payload":` + nested(64) + `,"ref":"1"}`, jsonMsg("", `"1"`, "t", "e", nested(64))},
}

func TestDecodeV1(t *testing.T) {
	t.Parallel()
	for _, tc := range v1Cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := V1.Decode([]byte(tc.frame), false)
			if err != nil {
				t.Fatalf("decode(%q): %v", tc.frame, err)
			}
			if !msgEqual(got, tc.want) {
				t.Fatalf("decode(%q)\n got %s\nwant %s", tc.frame, fmtMsg(got), fmtMsg(tc.want))
			}
		})
	}
}

func binMsg(joinRef, ref, topic, event string, payload []byte) Message {
	m := Message{Topic: topic, Event: event, Payload: Payload{Data: payload, Binary: true}}
	if joinRef != "" {
		m.JoinRef = StringRef(joinRef)
	}
	m.Ref = StringRef(ref)
	return m
}

type binaryCase struct {
	name  string
	frame []byte
	want  Message
}

var v2BinaryCases = []binaryCase{
	// join_ref "1", ref "2", topic "t", event "é" (2 bytes), payload 01 02 03.
	{"protocol example", msgHex("00 01 01 01 02 31 32 74 c3 a9 01 02 03"), binMsg("1", "2", "t", "é", []byte{1, 2, 3})},
	{"empty join_ref", msgHex("00 00 01 01 01 32 74 65 ff"), binMsg("", "2", "t", "e", []byte{0xff})},
	{"empty payload", msgHex("00 01 01 01 01 31 32 74 65"), binMsg("1", "2", "t", "e", []byte{})},
	{"all empty", msgHex("00 00 00 00 00"), binMsg("", "", "", "", []byte{})},
	{"ref needing escapes", append(msgHex("00 01 03 01 01 31 22 5c 0a 74 65"), 9), binMsg("1", "\"\\\n", "t", "e", []byte{9})},
	{"heartbeat", append(msgHex("00 00 01 07 09 34"), "phoenixheartbeat"...), binMsg("", "4", "phoenix", "heartbeat", []byte{})},
	{"255-byte topic", append(append(msgHex("00 01 01 ff 01 31 32"), long255...), 'e', 7), binMsg("1", "2", long255, "e", []byte{7})},
}

func TestDecodeV2Binary(t *testing.T) {
	t.Parallel()
	for _, tc := range v2BinaryCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := V2.Decode(tc.frame, true)
			if err != nil {
				t.Fatalf("decode(% x): %v", tc.frame, err)
			}
			if !msgEqual(got, tc.want) {
				t.Fatalf("decode(% x)\n got %s\nwant %s", tc.frame, fmtMsg(got), fmtMsg(tc.want))
			}
		})
	}
}

// The refs of a binary frame must not change if the frame is reused, and
// appending to a decoded Ref or payload must not write into the frame.
func TestDecodeV2BinaryRefsCopied(t *testing.T) {
	t.Parallel()
	frame := msgHex("00 01 01 01 02 31 32 74 c3 a9 01 02 03")
	m, err := V2.Decode(frame, true)
	if err != nil {
		t.Fatal(err)
	}
	frame[5], frame[6] = 'x', 'y'
	if string(m.JoinRef) != `"1"` || string(m.Ref) != `"2"` {
		t.Fatalf("refs changed with the frame: %s %s", []byte(m.JoinRef), []byte(m.Ref))
	}
	_ = append(m.JoinRef, 'z')
	if string(m.Ref) != `"2"` {
		t.Fatalf("append to JoinRef wrote into Ref: %s", m.Ref)
	}
}

func TestDecodeDoesNotLetAppendClobberFrame(t *testing.T) {
	t.Parallel()
	frame := []byte(`["1","2","t","e",{}]`)
	m, err := V2.Decode(frame, false)
	if err != nil {
		t.Fatal(err)
	}
	_ = append(m.JoinRef, 'X')
	_ = append(m.Payload.Data, 'X')
	if string(frame) != `["1","2","t","e",{}]` {
		t.Fatalf("frame modified: %s", frame)
	}
}

// ---------------------------------------------------------------------------
// Decoding: malformed frames (docs/protocol.md §8, rows F1-F4)

type malformedCase struct {
	name   string
	ser    Serializer
	binary bool
	frame  []byte
	want   string // substring of the error
}

func mc(name string, ser Serializer, frame, want string) malformedCase {
	return malformedCase{name, ser, false, []byte(frame), want}
}

func bc(name string, frame []byte, want string) malformedCase {
	return malformedCase{name, V2, true, frame, want}
}

var malformedCases = []malformedCase{
	// Row F2: not one value of the format.
	mc("not json", V2, `not json`, "must be a JSON array"),
	mc("[1,2,3]", V2, `[1,2,3]`, "topic must be a string, found a number"),
	mc("[]", V2, `[]`, "0 elements"),
	mc("{}", V2, `{}`, "must be a JSON array, found an object"),
	mc("null", V2, `null`, "must be a JSON array, found null"),
	mc("trailing garbage", V2, `["1","2","t","e",{}]x`, "trailing data"),
	mc("two arrays", V2, `["1","2","t","e",{}]["1","2","t","e",{}]`, "trailing data"),
	mc("empty frame", V2, ``, "found end of input"),
	mc("whitespace only", V2, " \n", "found end of input"),
	mc("BOM", V2, "\ufeff[\"1\",\"2\",\"t\",\"e\",{}]", "must be a JSON array"),
	mc("four elements", V2, `["1","2","t","e"]`, "4 elements"),
	mc("one element", V2, `[null]`, "1 elements"),
	mc("trailing comma", V2, `["1","2","t","e",{},]`, "expected a JSON value"),
	mc("missing comma", V2, `["1","2","t","e" {}]`, "expected ',' or ']'"),
	mc("unterminated array", V2, `["1","2","t","e",{}`, "expected ',' or ']'"),
	mc("unterminated string", V2, `["1","2","t`, "unterminated string"),
	// Row F3: fields of the wrong type or size.
	mc("topic 42", V2, `["1","2",42,"e",{}]`, "topic must be a string, found a number"),
	mc("topic null", V2, `["1","2",null,"e",{}]`, "topic must be a string, found null"),
	mc("topic {}", V2, `["1","2",{},"e",{}]`, "topic must be a string, found an object"),
	mc("topic []", V2, `["1","2",[],"e",{}]`, "topic must be a string, found an array"),
	mc("topic true", V2, `["1","2",true,"e",{}]`, "topic must be a string, found a boolean"),
	mc("topic 300 bytes", V2, `["1","2","`+long300+`","e",{}]`, "topic is 300 bytes, limit 255"),
	mc("topic 256 bytes", V2, `["1","2","`+long256+`","e",{}]`, "topic is 256 bytes"),
	mc("escaped topic 256 bytes decoded", V2, `["1","2","`+strings.Repeat(`\u00e9`, 128)+`","e",{}]`, "topic is 256 bytes"),
	mc("event 42", V2, `["1","2","t",42,{}]`, "event must be a string, found a number"),
	mc("event null", V2, `["1","2","t",null,{}]`, "event must be a string"),
	mc("event object", V2, `["1","2","t",{"a":1},{}]`, "event must be a string"),
	mc("event 256 bytes", V2, `["1","2","t","`+long256+`",{}]`, "event is 256 bytes"),
	mc("join_ref object", V2, `[{},"2","t","e",{}]`, "join_ref must be a string, a number or null"),
	mc("ref array", V2, `["1",[],"t","e",{}]`, "ref must be a string, a number or null"),
	mc("ref bool", V2, `["1",true,"t","e",{}]`, "ref must be a string, a number or null"),
	mc("ref 256 bytes", V2, `["1","`+long256+`","t","e",{}]`, "ref is 256 bytes"),
	mc("number ref 256 bytes", V2, `[`+strings.Repeat("1", 256)+`,"2","t","e",{}]`, "join_ref is 256 bytes"),
	mc("escaped ref 256 bytes decoded", V2, `[null,"`+strings.Repeat(`\u0061`, 256)+`","t","e",{}]`, "ref is 256 bytes"),
	// UTF-8 and escapes.
	mc("invalid UTF-8 in topic", V2, "[\"1\",\"2\",\"t\xff\",\"e\",{}]", "not valid UTF-8"),
	mc("invalid UTF-8 in payload", V2, "[\"1\",\"2\",\"t\",\"e\",{\"a\":\"\xc3\"}]", "not valid UTF-8"),
	mc("overlong UTF-8", V2, "[\"1\",\"2\",\"\xc0\xaf\",\"e\",{}]", "not valid UTF-8"),
	mc("UTF-8 surrogate bytes", V2, "[\"1\",\"2\",\"\xed\xa0\x80\",\"e\",{}]", "not valid UTF-8"),
	mc("lone high surrogate topic", V2, `["1","2","\ud800","e",{}]`, "topic at offset 9 is not valid Unicode"),
	mc("lone low surrogate topic", V2, `["1","2","\udc00","e",{}]`, "not valid Unicode"),
	mc("high surrogate then letter", V2, `["1","2","\ud800\u0041","e",{}]`, "not valid Unicode"),
	mc("reversed surrogates event", V2, `["1","2","t","\ude00\ud83d",{}]`, "event at offset 13 is not valid Unicode"),
	mc("lone surrogate ref", V2, `["1","\ud800","t","e",{}]`, "ref at offset 5 is not valid Unicode"),
	mc("raw newline in string", V2, "[\"1\",\"2\",\"t\n\",\"e\",{}]", "control character"),
	mc("raw tab in payload", V2, "[\"1\",\"2\",\"t\",\"e\",{\"a\":\"\t\"}]", "control character"),
	mc("invalid escape", V2, `["1","2","t\x","e",{}]`, "invalid escape"),
	mc("short \\u escape", V2, `["1","2","t\u12","e",{}]`, "invalid \\u escape"),
	mc("bad hex in \\u escape", V2, `["1","2","t\u12g4","e",{}]`, "invalid \\u escape"),
	// Numbers and literals.
	mc("leading zero", V2, `[01,"2","t","e",{}]`, "expected ',' or ']'"),
	mc("trailing dot", V2, `[1.,"2","t","e",{}]`, "invalid number"),
	mc("bare minus", V2, `[-,"2","t","e",{}]`, "invalid number"),
	mc("empty exponent", V2, `[1e,"2","t","e",{}]`, "invalid number"),
	mc("plus sign", V2, `[+1,"2","t","e",{}]`, "join_ref must be a string, a number or null"),
	mc("leading dot", V2, `[.5,"2","t","e",{}]`, "join_ref must be"),
	mc("NaN payload", V2, `["1","2","t","e",NaN]`, "expected a JSON value"),
	mc("nul literal", V2, `[nul,"2","t","e",{}]`, "invalid literal"),
	mc("tru payload", V2, `["1","2","t","e",tru]`, "invalid literal"),
	// Payload structure.
	mc("payload depth 65", V2, `["1","2","t","e",`+nested(65)+`]`, "payload is nested deeper than 64 levels"),
	mc("payload object depth 65", V2, `["1","2","t","e",`+strings.Repeat(`{"a":`, 64)+`{}`+strings.Repeat(`}`, 64)+`]`, "nested deeper than 64"),
	mc("extra element depth 65", V2, `["1","2","t","e",{},`+nested(65)+`]`, "extra array element is nested deeper"),
	mc("very deep payload", V2, `["1","2","t","e",`+strings.Repeat("[", 100000)+`]`, "nested deeper than 64"),
	mc("non-string key", V2, `["1","2","t","e",{1:2}]`, "expected an object key"),
	mc("payload trailing comma", V2, `["1","2","t","e",{"a":1,}]`, "expected an object key"),
	mc("payload missing colon", V2, `["1","2","t","e",{"a" 1}]`, "expected ':'"),
	mc("payload missing value", V2, `["1","2","t","e",{"a":}]`, "expected a JSON value"),
	mc("payload unclosed", V2, `["1","2","t","e",{"a":[1,2}]`, "expected ',' or ']'"),
	mc("missing payload", V2, `["1","2","t","e",]`, "payload: expected a JSON value"),
	// Row F4: binary frames.
	bc("empty binary frame", nil, "empty binary frame"),
	bc("kind 1", msgHex("01 01 01 01 02 31 32 74 c3 a9"), "kind 1"),
	bc("kind 2", msgHex("02 01 01 74 65"), "kind 2"),
	bc("unknown kind", msgHex("07 00 00 00 00"), "kind 7"),
	bc("kind 255", msgHex("ff"), "kind 255"),
	bc("header 1 byte", msgHex("00"), "header is 1 bytes"),
	bc("header 4 bytes", msgHex("00 01 01 01"), "header is 4 bytes"),
	bc("length too large", msgHex("00 01 01 01 05 31 32 74 c3 a9"), "exceed the 5 bytes"),
	bc("lengths all 255", msgHex("00 ff ff ff ff 31"), "exceed the 1 bytes"),
	bc("join_ref length too large", msgHex("00 09 00 00 00 31"), "exceed"),
	bc("invalid UTF-8 join_ref", msgHex("00 01 01 01 01 ff 32 74 65"), "join_ref is not valid UTF-8"),
	bc("invalid UTF-8 ref", msgHex("00 01 01 01 01 31 80 74 65"), "ref is not valid UTF-8"),
	bc("invalid UTF-8 topic", msgHex("00 01 01 01 01 31 32 c3 65"), "topic is not valid UTF-8"),
	bc("truncated UTF-8 event", msgHex("00 01 01 01 01 31 32 74 c3 a9"), "event is not valid UTF-8"),
	{"binary on V1", V1, true, msgHex("00 01 01 01 02 31 32 74 c3 a9 01 02 03"), "binary frame on a V1"},
	// V1 objects.
	mc("V1 not json", V1, `not json`, "must be a JSON object"),
	mc("V1 array", V1, `["1","2","t","e",{}]`, "must be a JSON object, found an array"),
	mc("V1 null", V1, `null`, "must be a JSON object, found null"),
	mc("V1 empty object", V1, `{}`, `no "topic" key`),
	mc("V1 missing event", V1, `{"topic":"t","payload":{},"ref":"1"}`, `no "event" key`),
	mc("V1 missing payload", V1, `{"topic":"t","event":"e","ref":"1"}`, `no "payload" key`),
	mc("V1 missing ref", V1, `{"topic":"t","event":"e","payload":{}}`, `no "ref" key`),
	mc("V1 duplicate topic", V1, `{"topic":"a","topic":"b","event":"e","payload":{},"ref":"1"}`, `duplicate key "topic"`),
	mc("V1 duplicate ref", V1, `{"topic":"a","event":"e","payload":{},"ref":"1","ref":"2"}`, `duplicate key "ref"`),
	mc("V1 duplicate join_ref", V1, `{"join_ref":"1","topic":"a","event":"e","payload":{},"ref":"1","join_ref":null}`, `duplicate key "join_ref"`),
	mc("V1 duplicate payload", V1, `{"topic":"a","event":"e","payload":{},"payload":[],"ref":"1"}`, `duplicate key "payload"`),
	mc("V1 duplicate via escape", V1, `{"topic":"a","top\u0069c":"b","event":"e","payload":{},"ref":"1"}`, `duplicate key "top\u0069c"`),
	mc("V1 case variant only", V1, `{"Topic":"t","event":"e","payload":{},"ref":"1"}`, `no "topic" key`),
	mc("V1 upper-case keys", V1, `{"TOPIC":"t","EVENT":"e","PAYLOAD":{},"REF":"1"}`, `no "topic" key`),
	mc("V1 topic 42", V1, `{"topic":42,"event":"e","payload":{},"ref":"1"}`, "topic must be a string"),
	mc("V1 topic 300 bytes", V1, `{"topic":"`+long300+`","event":"e","payload":{},"ref":"1"}`, "topic is 300 bytes"),
	mc("V1 event null", V1, `{"topic":"t","event":null,"payload":{},"ref":"1"}`, "event must be a string"),
	mc("V1 ref object", V1, `{"topic":"t","event":"e","payload":{},"ref":{}}`, "ref must be a string, a number or null"),
	mc("V1 trailing garbage", V1, `{"topic":"t","event":"e","payload":{},"ref":"1"}}`, "trailing data"),
	mc("V1 invalid UTF-8", V1, "{\"topic\":\"t\xfe\",\"event\":\"e\",\"payload\":{},\"ref\":\"1\"}", "not valid UTF-8"),
	mc("V1 payload depth 65", V1, `{"topic":"t","event":"e","payload":`+nested(65)+`,"ref":"1"}`, "payload is nested deeper than 64"),
	mc("V1 unknown key depth 65", V1, `{"x":`+nested(65)+`,"topic":"t","event":"e","payload":{},"ref":"1"}`, "value of unknown key is nested deeper"),
	mc("V1 trailing comma", V1, `{"topic":"t","event":"e","payload":{},"ref":"1",}`, "expected an object key"),
	mc("V1 missing colon", V1, `{"topic" "t"}`, "expected ':'"),
	mc("V1 non-string key", V1, `{topic:"t"}`, "expected an object key"),
	mc("V1 lone surrogate key", V1, `{"\ud800":1,"topic":"t","event":"e","payload":{},"ref":"1"}`, "not valid Unicode"),
	mc("V1 unterminated", V1, `{"topic":"t"`, "expected ',' or '}'"),
}

func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	for _, tc := range malformedCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := tc.ser.Decode(tc.frame, tc.binary)
			if err == nil {
				t.Fatalf("decode(%q) = %s, want an error", tc.frame, fmtMsg(m))
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("error %q does not wrap ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if !msgEqual(m, Message{}) {
				t.Errorf("decode returned a non-zero message with the error: %s", fmtMsg(m))
			}
		})
	}
}

// Every prefix of a valid frame is either valid (binary) or an error, never a panic.
func TestDecodeTruncated(t *testing.T) {
	t.Parallel()
	for _, tc := range v2TextCases {
		for i := range len(tc.frame) {
			if _, err := V2.Decode([]byte(tc.frame[:i]), false); err == nil && strings.TrimSpace(tc.frame[:i]) != strings.TrimSpace(tc.frame) {
				t.Errorf("decode(%q) succeeded", tc.frame[:i])
			}
		}
	}
	for _, tc := range v1Cases {
		for i := range len(tc.frame) {
			if _, err := V1.Decode([]byte(tc.frame[:i]), false); err == nil && strings.TrimSpace(tc.frame[:i]) != strings.TrimSpace(tc.frame) {
				t.Errorf("decode(%q) succeeded", tc.frame[:i])
			}
		}
	}
	for _, tc := range v2BinaryCases {
		for i := range len(tc.frame) {
			_, _ = V2.Decode(tc.frame[:i], true)
		}
	}
}

// ---------------------------------------------------------------------------
// Encoding

func jp(s string) Payload  { return Payload{Data: []byte(s)} }
func bp(b ...byte) Payload { return Payload{Data: b, Binary: true} }

type encodeCase struct {
	name   string
	encode func() ([]byte, error)
	want   []byte
}

func encodeCases() []encodeCase {
	v1, v2 := V1, V2
	j3, r3, r4 := Ref(`"3"`), Ref(`"3"`), Ref(`"4"`)
	body := jp(`{"body":"hi"}`)
	return []encodeCase{
		{"v2 push", func() ([]byte, error) { return v2.EncodeMessage(j3, nil, "room:lobby", "new_msg", body) },
			[]byte(`["3",null,"room:lobby","new_msg",{"body":"hi"}]`)},
		{"v2 push null join_ref", func() ([]byte, error) { return v2.EncodeMessage(nil, nil, "t", "e", body) },
			[]byte(`[null,null,"t","e",{"body":"hi"}]`)},
		{"v2 push zero payload", func() ([]byte, error) { return v2.EncodeMessage(j3, nil, "t", "e", Payload{}) },
			[]byte(`["3",null,"t","e",{}]`)},
		{"v2 push nshafer empty join_ref", func() ([]byte, error) { return v2.EncodeMessage(Ref(`""`), nil, "t", "e", Payload{}) },
			[]byte(`["",null,"t","e",{}]`)},
		{"v2 close", func() ([]byte, error) { return v2.EncodeMessage(j3, j3, "room:lobby", "phx_close", Payload{}) },
			[]byte(`["3","3","room:lobby","phx_close",{}]`)},
		{"v2 message number refs", func() ([]byte, error) { return v2.EncodeMessage(Ref(`7`), Ref(`1e3`), "t", "e", Payload{}) },
			[]byte(`[7,1e3,"t","e",{}]`)},
		{"v2 reply", func() ([]byte, error) { return v2.EncodeReply(j3, r3, "room:lobby", "ok", jp(`{}`)) },
			[]byte(`["3","3","room:lobby","phx_reply",{"status":"ok","response":{}}]`)},
		{"v2 heartbeat reply", func() ([]byte, error) { return v2.EncodeReply(nil, r4, "phoenix", "ok", Payload{}) },
			[]byte(`[null,"4","phoenix","phx_reply",{"status":"ok","response":{}}]`)},
		{"v2 reply number ref", func() ([]byte, error) {
			return v2.EncodeReply(Ref(`1`), Ref(`123456789012345678901234567890`), "t", "error", jp(`{"reason":"x"}`))
		}, []byte(`[1,123456789012345678901234567890,"t","phx_reply",{"status":"error","response":{"reason":"x"}}]`)},
		{"v2 broadcast", func() ([]byte, error) { return v2.EncodeBroadcast("room:lobby", "new_msg", body) },
			[]byte(`[null,null,"room:lobby","new_msg",{"body":"hi"}]`)},
		{"v2 escaped strings", func() ([]byte, error) {
			return v2.EncodeBroadcast("a\"b\\c\n\r\t\b\f\x00\x1f\x7f<>&é\u2028", "bad\xffutf8", Payload{})
		}, []byte(`[null,null,"a\"b\\c\n\r\t\b\f\u0000\u001f` + "\x7f<>&é\u2028" + `","bad` + "\uFFFD" + `utf8",{}]`)},
		{"v2 binary push", func() ([]byte, error) { return v2.EncodeMessage(Ref(`"3"`), nil, "t", "é", bp(1, 2, 3)) },
			msgHex("00 01 01 02 33 74 c3 a9 01 02 03")},
		{"v2 binary push null join_ref", func() ([]byte, error) { return v2.EncodeMessage(nil, nil, "t", "e", bp()) },
			msgHex("00 00 01 01 74 65")},
		{"v2 binary message drops ref", func() ([]byte, error) { return v2.EncodeMessage(Ref(`"3"`), Ref(`"3"`), "t", "e", bp(9)) },
			msgHex("00 01 01 01 33 74 65 09")},
		{"v2 binary reply", func() ([]byte, error) { return v2.EncodeReply(Ref(`"3"`), Ref(`"4"`), "t", "ok", bp(1, 2)) },
			msgHex("01 01 01 01 02 33 34 74 6f 6b 01 02")},
		{"v2 binary reply number ref", func() ([]byte, error) { return v2.EncodeReply(nil, Ref(`12`), "t", "ok", bp()) },
			msgHex("01 00 02 01 02 31 32 74 6f 6b")},
		{"v2 binary reply escaped ref", func() ([]byte, error) { return v2.EncodeReply(nil, Ref(`"\u00e9\""`), "t", "ok", bp()) },
			msgHex("01 00 03 01 02 c3 a9 22 74 6f 6b")},
		{"v2 binary broadcast", func() ([]byte, error) { return v2.EncodeBroadcast("t", "é", bp(1, 2, 3)) },
			msgHex("02 01 02 74 c3 a9 01 02 03")},
		{"v2 binary 255-byte fields", func() ([]byte, error) { return v2.EncodeBroadcast(long255, "e", bp()) },
			append(append(msgHex("02 ff 01"), long255...), 'e')},
		{"v1 push", func() ([]byte, error) { return v1.EncodeMessage(j3, nil, "room:lobby", "new_msg", body) },
			[]byte(`{"topic":"room:lobby","event":"new_msg","payload":{"body":"hi"},"ref":null}`)},
		{"v1 close", func() ([]byte, error) { return v1.EncodeMessage(j3, j3, "room:lobby", "phx_close", Payload{}) },
			[]byte(`{"topic":"room:lobby","event":"phx_close","payload":{},"ref":"3"}`)},
		{"v1 reply", func() ([]byte, error) { return v1.EncodeReply(j3, r3, "room:lobby", "ok", Payload{}) },
			[]byte(`{"topic":"room:lobby","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"3"}`)},
		{"v1 reply null ref", func() ([]byte, error) {
			return v1.EncodeReply(nil, nil, "t", "error", jp(`{"reason":"unmatched topic"}`))
		},
			[]byte(`{"topic":"t","event":"phx_reply","payload":{"status":"error","response":{"reason":"unmatched topic"}},"ref":null}`)},
		{"v1 reply number ref", func() ([]byte, error) { return v1.EncodeReply(nil, Ref(`12`), "t", "ok", Payload{}) },
			[]byte(`{"topic":"t","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":12}`)},
		{"v1 broadcast", func() ([]byte, error) { return v1.EncodeBroadcast("room:lobby", "new_msg", body) },
			[]byte(`{"topic":"room:lobby","event":"new_msg","payload":{"body":"hi"},"ref":null}`)},
	}
}

func TestEncode(t *testing.T) {
	t.Parallel()
	for _, tc := range encodeCases() {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
			if got[0] == '[' || got[0] == '{' {
				if !json.Valid(got) || !utf8.Valid(got) {
					t.Fatalf("output is not valid JSON in UTF-8: %q", got)
				}
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	t.Parallel()
	v1, v2 := V1, V2
	cases := []struct {
		name   string
		encode func() ([]byte, error)
		want   error
	}{
		{"v1 binary push", func() ([]byte, error) { return v1.EncodeMessage(nil, nil, "t", "e", bp(1)) }, ErrBinaryUnsupported},
		{"v1 binary message", func() ([]byte, error) { return v1.EncodeMessage(nil, nil, "t", "e", bp(1)) }, ErrBinaryUnsupported},
		{"v1 binary reply", func() ([]byte, error) { return v1.EncodeReply(nil, nil, "t", "ok", bp(1)) }, ErrBinaryUnsupported},
		{"v1 binary broadcast", func() ([]byte, error) { return v1.EncodeBroadcast("t", "e", bp(1)) }, ErrBinaryUnsupported},
		{"binary topic 256", func() ([]byte, error) { return v2.EncodeBroadcast(long256, "e", bp()) }, ErrMalformed},
		{"binary event 256", func() ([]byte, error) { return v2.EncodeMessage(nil, nil, "t", long256, bp()) }, ErrMalformed},
		{"binary join_ref 256", func() ([]byte, error) { return v2.EncodeMessage(StringRef(long256), nil, "t", "e", bp()) }, ErrMalformed},
		{"binary ref 256", func() ([]byte, error) { return v2.EncodeReply(nil, StringRef(long256), "t", "ok", bp()) }, ErrMalformed},
		{"binary status 256", func() ([]byte, error) { return v2.EncodeReply(nil, nil, "t", long256, bp()) }, ErrMalformed},
		{"binary multibyte topic 256 bytes", func() ([]byte, error) { return v2.EncodeBroadcast(strings.Repeat("é", 128), "e", bp()) }, ErrMalformed},
		{"invalid join_ref bare word", func() ([]byte, error) { return v2.EncodeMessage(Ref(`abc`), nil, "t", "e", Payload{}) }, ErrMalformed},
		{"invalid ref unterminated", func() ([]byte, error) { return v2.EncodeReply(nil, Ref(`"abc`), "t", "ok", Payload{}) }, ErrMalformed},
		{"invalid ref two tokens", func() ([]byte, error) { return v2.EncodeReply(nil, Ref(`1 2`), "t", "ok", Payload{}) }, ErrMalformed},
		{"invalid ref object", func() ([]byte, error) { return v1.EncodeReply(nil, Ref(`{}`), "t", "ok", Payload{}) }, ErrMalformed},
		{"invalid ref bad UTF-8", func() ([]byte, error) { return v2.EncodeMessage(nil, Ref("\"\xff\""), "t", "e", Payload{}) }, ErrMalformed},
		{"invalid binary join_ref", func() ([]byte, error) { return v2.EncodeMessage(Ref(`x`), nil, "t", "e", bp()) }, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.encode()
			if !errors.Is(err, tc.want) {
				t.Fatalf("got (%q, %v), want error %v", got, err, tc.want)
			}
		})
	}
}

// Topics and events of any content produce valid JSON that decodes back to
// the same strings (after invalid UTF-8 is replaced).
func TestEncodeStringsRoundTrip(t *testing.T) {
	t.Parallel()
	var all []byte
	for c := range 256 {
		all = append(all, byte(c))
	}
	for _, s := range []string{"", "plain", string(all), "\u2028\u2029", "😀", "\\\"", "\xed\xa0\x80", "a\xc3"} {
		frame, err := V2.EncodeBroadcast(s, s, Payload{})
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(frame) || !utf8.Valid(frame) {
			t.Fatalf("invalid frame for %q: %q", s, frame)
		}
		m, err := V2.Decode(frame, false)
		if err != nil {
			t.Fatalf("decode(%q): %v", frame, err)
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if m.Topic != want || m.Event != want {
			t.Fatalf("round trip of %q gave topic %q event %q", s, m.Topic, m.Event)
		}
	}
}

// ---------------------------------------------------------------------------
// Refs

func TestRef(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ref    Ref
		null   bool
		str    string
		equals []Ref
	}{
		{nil, true, "", []Ref{nil, Ref("null"), Ref(`""`), Ref{}}},
		{Ref("null"), true, "", []Ref{nil, Ref(`""`)}},
		{Ref(`""`), true, "", []Ref{nil, Ref("null")}},
		{Ref(`"3"`), false, "3", []Ref{Ref(`"3"`)}},
		{Ref(`12`), false, "12", []Ref{Ref(`12`)}},
		{Ref(`1e3`), false, "1e3", []Ref{Ref(`1e3`)}},
		{Ref(`"a\"b\u00e9\ud83d\ude00"`), false, "a\"bé😀", nil},
		{Ref(`"\ud800"`), false, `"\ud800"`, nil}, // undecodable: shown raw
	}
	for _, tc := range cases {
		if got := tc.ref.IsNull(); got != tc.null {
			t.Errorf("Ref(%s).IsNull() = %v", []byte(tc.ref), got)
		}
		if got := tc.ref.String(); got != tc.str {
			t.Errorf("Ref(%s).String() = %q, want %q", []byte(tc.ref), got, tc.str)
		}
		for _, o := range tc.equals {
			if !tc.ref.Equal(o) || !o.Equal(tc.ref) {
				t.Errorf("Ref(%s).Equal(%s) = false", []byte(tc.ref), []byte(o))
			}
		}
	}
	notEqual := [][2]Ref{
		{Ref(`"3"`), Ref(`3`)}, // type matters
		{Ref(`12`), Ref(`1.2e1`)},
		{Ref(`"3"`), nil},
		{nil, Ref(`0`)},
		{Ref(`"a"`), Ref(`"\u0061"`)}, // byte equality
	}
	for _, p := range notEqual {
		if p[0].Equal(p[1]) || p[1].Equal(p[0]) {
			t.Errorf("Ref(%s).Equal(%s) = true", []byte(p[0]), []byte(p[1]))
		}
	}
	for _, s := range []string{"", "3", "a\"b\\c\n\x00", "é😀"} {
		r := StringRef(s)
		if !json.Valid(r) || r[0] != '"' {
			t.Errorf("StringRef(%q) = %s, not a JSON string", s, []byte(r))
		}
		if r.String() != s {
			t.Errorf("StringRef(%q).String() = %q", s, r.String())
		}
	}
	if got := StringRef("\xff"); string(got) != "\"\uFFFD\"" {
		t.Errorf("StringRef(invalid UTF-8) = %q", got)
	}
}

// A client's refs come back byte for byte in replies, whatever their JSON type.
func TestRefEcho(t *testing.T) {
	t.Parallel()
	refs := []string{`"3"`, `12`, `1e3`, `-0.0E-0`, `123456789012345678901234567890123456789`, `"abc def"`,
		`"\u00e9\"\\"`, `"😀"`, `""`, `"` + long255 + `"`}
	for _, ref := range refs {
		frame := `[` + ref + `,` + ref + `,"room:1","ping",{}]`
		m, err := V2.Decode([]byte(frame), false)
		if err != nil {
			t.Fatalf("decode(%s): %v", frame, err)
		}
		out, err := V2.EncodeReply(m.JoinRef, m.Ref, m.Topic, "ok", Payload{})
		if err != nil {
			t.Fatal(err)
		}
		want := `[` + ref + `,` + ref + `,"room:1","phx_reply",{"status":"ok","response":{}}]`
		if string(out) != want {
			t.Errorf("reply\n got %s\nwant %s", out, want)
		}
		v1frame := `{"topic":"room:1","event":"ping","payload":{},"ref":` + ref + `}`
		m, err = V1.Decode([]byte(v1frame), false)
		if err != nil {
			t.Fatalf("decode(%s): %v", v1frame, err)
		}
		out, err = V1.EncodeReply(m.JoinRef, m.Ref, m.Topic, "ok", Payload{})
		if err != nil {
			t.Fatal(err)
		}
		want = `{"topic":"room:1","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":` + ref + `}`
		if string(out) != want {
			t.Errorf("V1 reply\n got %s\nwant %s", out, want)
		}
	}
	// A binary client push gets its refs back in a text reply as JSON strings,
	// and in a binary reply as the same text.
	m, err := V2.Decode(msgHex("00 01 02 01 01 37 31 32 74 65"), true)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := V2.EncodeReply(m.JoinRef, m.Ref, m.Topic, "ok", Payload{})
	if want := `["7","12","t","phx_reply",{"status":"ok","response":{}}]`; string(out) != want {
		t.Errorf("text reply to binary push: got %s want %s", out, want)
	}
	out, _ = V2.EncodeReply(m.JoinRef, m.Ref, m.Topic, "ok", Payload{Binary: true})
	if want := msgHex("01 01 02 01 02 37 31 32 74 6f 6b"); !bytes.Equal(out, want) {
		t.Errorf("binary reply to binary push: got % x want % x", out, want)
	}
}

// ---------------------------------------------------------------------------
// Golden frames

// Client frames: inputs captured from the phoenix.js 1.8.16 Serializer (and a
// few hand-written V1/nshafer frames, see testdata/frames/README.md).
var clientGolden = []struct {
	file string
	want Message
}{
	{"v2_join.json", jsonMsg(`"3"`, `"3"`, "room:lobby", "phx_join", `{"token":"x"}`)},
	{"v2_heartbeat.json", jsonMsg("", `"4"`, "phoenix", "heartbeat", `{}`)},
	{"v2_leave.json", jsonMsg(`"3"`, `"6"`, "room:lobby", "phx_leave", `{}`)},
	{"v2_push_unicode.json", jsonMsg(`"3"`, `"5"`, "room:é", "new_msg", `{"body":"héllo \"q\"\n`+"\u2028😀"+`","n":1.5,"list":[null,true]}`)},
	{"v2_push_binary.bin", binMsg("1", "2", "t", "é", []byte{1, 2, 3})},
	{"v2_push_binary_empty.bin", binMsg("12", "13", "room:lobby", "upload", []byte{})},
	{"v2_heartbeat_nshafer.json", jsonMsg(`""`, `"5"`, "phoenix", "heartbeat", `null`)},
	{"v1_join.json", jsonMsg(`"1"`, `"1"`, "room:lobby", "phx_join", `{"token":"x"}`)},
	{"v1_heartbeat.json", jsonMsg("", `"2"`, "phoenix", "heartbeat", `{}`)},
}

func TestGoldenClientFrames(t *testing.T) {
	t.Parallel()
	for _, tc := range clientGolden {
		t.Run(tc.file, func(t *testing.T) {
			frame, err := os.ReadFile(filepath.Join("testdata", "frames", "client", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			ser := V2
			if strings.HasPrefix(tc.file, "v1_") {
				ser = V1
			}
			got, err := ser.Decode(frame, strings.HasSuffix(tc.file, ".bin"))
			if err != nil {
				t.Fatal(err)
			}
			if !msgEqual(got, tc.want) {
				t.Fatalf("\n got %s\nwant %s", fmtMsg(got), fmtMsg(tc.want))
			}
		})
	}
}

// serverGolden lists the frames the server sends; the files are compared byte
// for byte and rewritten with -update.
func serverGolden() []struct {
	file   string
	encode func() ([]byte, error)
} {
	v1, v2 := V1, V2
	j, r := Ref(`"3"`), Ref(`"7"`)
	body := jp(`{"body":"hi","user":{"id":1,"tags":["a","b"]}}`)
	bin := bp(0x00, 0x01, 0xfe, 0xff)
	return []struct {
		file   string
		encode func() ([]byte, error)
	}{
		{"v2_push.json", func() ([]byte, error) { return v2.EncodeMessage(j, nil, "room:lobby", "new_msg", body) }},
		{"v2_push.bin", func() ([]byte, error) { return v2.EncodeMessage(j, nil, "room:lobby", "new_msg", bin) }},
		{"v2_join_reply.json", func() ([]byte, error) { return v2.EncodeReply(j, j, "room:lobby", "ok", jp(`{}`)) }},
		{"v2_reply.json", func() ([]byte, error) { return v2.EncodeReply(j, r, "room:lobby", "ok", jp(`{"id":42}`)) }},
		{"v2_reply.bin", func() ([]byte, error) { return v2.EncodeReply(j, r, "room:lobby", "ok", bin) }},
		{"v2_reply_error.json", func() ([]byte, error) {
			return v2.EncodeReply(j, r, "room:lobby", "error", jp(`{"reason":"unauthorized"}`))
		}},
		{"v2_reply_number_ref.json", func() ([]byte, error) { return v2.EncodeReply(Ref(`1`), Ref(`12`), "room:lobby", "ok", Payload{}) }},
		{"v2_heartbeat_reply.json", func() ([]byte, error) { return v2.EncodeReply(nil, Ref(`"4"`), "phoenix", "ok", Payload{}) }},
		{"v2_unmatched_topic.json", func() ([]byte, error) {
			return v2.EncodeReply(nil, r, "room:none", "error", jp(`{"reason":"unmatched topic"}`))
		}},
		{"v2_close.json", func() ([]byte, error) { return v2.EncodeMessage(j, j, "room:lobby", "phx_close", Payload{}) }},
		{"v2_error.json", func() ([]byte, error) { return v2.EncodeMessage(j, j, "room:lobby", "phx_error", Payload{}) }},
		{"v2_broadcast.json", func() ([]byte, error) { return v2.EncodeBroadcast("room:lobby", "new_msg", body) }},
		{"v2_broadcast.bin", func() ([]byte, error) { return v2.EncodeBroadcast("room:lobby", "new_msg", bin) }},
		{"v2_broadcast_unicode.json", func() ([]byte, error) {
			return v2.EncodeBroadcast("room:é😀", "msg\"quoted\"\n", jp(`{"s":"é"}`))
		}},
		{"v2_broadcast_unicode.bin", func() ([]byte, error) { return v2.EncodeBroadcast("room:é😀", "é", bin) }},
		{"v1_push.json", func() ([]byte, error) { return v1.EncodeMessage(j, nil, "room:lobby", "new_msg", body) }},
		{"v1_reply.json", func() ([]byte, error) { return v1.EncodeReply(j, r, "room:lobby", "ok", jp(`{"id":42}`)) }},
		{"v1_heartbeat_reply.json", func() ([]byte, error) { return v1.EncodeReply(nil, Ref(`"4"`), "phoenix", "ok", Payload{}) }},
		{"v1_close.json", func() ([]byte, error) { return v1.EncodeMessage(j, j, "room:lobby", "phx_close", Payload{}) }},
		{"v1_broadcast.json", func() ([]byte, error) { return v1.EncodeBroadcast("room:lobby", "new_msg", body) }},
	}
}

func TestGoldenServerFrames(t *testing.T) {
	// Not parallel: -update writes files.
	for _, tc := range serverGolden() {
		t.Run(tc.file, func(t *testing.T) {
			got, err := tc.encode()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "frames", "server", tc.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGoldenServerFrames -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("frame differs from %s\n got %q\nwant %q", path, got, want)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Allocations

func TestAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are checked in full runs")
	}
	v1, v2 := V1, V2
	j, r := Ref(`"3"`), Ref(`"7"`)
	body := jp(`{"body":"hello world","user":"alice"}`)
	bin := bp(1, 2, 3, 4)
	encoders := []struct {
		name string
		f    func()
	}{
		{"v2 push", func() { _, _ = v2.EncodeMessage(j, nil, "room:lobby", "new_msg", body) }},
		{"v2 message", func() { _, _ = v2.EncodeMessage(j, j, "room:lobby", "phx_close", Payload{}) }},
		{"v2 reply", func() { _, _ = v2.EncodeReply(j, r, "room:lobby", "ok", body) }},
		{"v2 reply null refs", func() { _, _ = v2.EncodeReply(nil, nil, "room:lobby", "ok", body) }},
		{"v2 broadcast", func() { _, _ = v2.EncodeBroadcast("room:lobby", "new_msg", body) }},
		{"v2 broadcast escapes", func() { _, _ = v2.EncodeBroadcast("room:\"x\"\n", "new\tmsg", body) }},
		{"v2 binary push", func() { _, _ = v2.EncodeMessage(j, nil, "room:lobby", "new_msg", bin) }},
		{"v2 binary reply", func() { _, _ = v2.EncodeReply(j, r, "room:lobby", "ok", bin) }},
		{"v2 binary broadcast", func() { _, _ = v2.EncodeBroadcast("room:lobby", "new_msg", bin) }},
		{"v1 push", func() { _, _ = v1.EncodeMessage(j, nil, "room:lobby", "new_msg", body) }},
		{"v1 reply", func() { _, _ = v1.EncodeReply(j, r, "room:lobby", "ok", body) }},
		{"v1 broadcast", func() { _, _ = v1.EncodeBroadcast("room:lobby", "new_msg", body) }},
	}
	for _, e := range encoders {
		if n := testing.AllocsPerRun(100, e.f); n != 1 {
			t.Errorf("%s: %v allocs per encode, want 1", e.name, n)
		}
	}
	decoders := []struct {
		name   string
		ser    Serializer
		frame  []byte
		binary bool
		max    float64
	}{
		{"v2 heartbeat", v2, []byte(`[null,"4","phoenix","heartbeat",{}]`), false, 0},
		{"v2 join", v2, []byte(`["3","3","room:lobby","phx_join",{"token":"x"}]`), false, 1},
		{"v2 push", v2, []byte(`["3","7","room:lobby","new_msg",{"body":"hello world","user":"alice"}]`), false, 1},
		{"v2 escaped topic", v2, []byte(`["3","7","room:\u00e9","new_msg",{}]`), false, 2},
		{"v2 binary", v2, msgHex("00 01 01 01 02 31 32 74 c3 a9 01 02 03"), true, 2},
		{"v2 binary heartbeat", v2, append(msgHex("00 00 01 07 09 34"), "phoenixheartbeat"...), true, 1},
		{"v1 push", v1, []byte(`{"topic":"room:lobby","event":"new_msg","payload":{"body":"x"},"ref":"7","join_ref":"3"}`), false, 1},
	}
	for _, d := range decoders {
		n := testing.AllocsPerRun(100, func() {
			if _, err := d.ser.Decode(d.frame, d.binary); err != nil {
				t.Fatal(err)
			}
		})
		if n > d.max {
			t.Errorf("decode %s: %v allocs, want <= %v", d.name, n, d.max)
		}
	}
}

// ---------------------------------------------------------------------------
// Benchmarks

// Typed sinks: assigning to an interface would allocate.
var (
	benchString string
	benchBytes  []byte
)

func BenchmarkDecodeV2Text(b *testing.B) {
	frame := []byte(`["3","7","room:lobby","new_msg",{"body":"hello world","user":{"id":1,"name":"alice"},"tags":["a","b"]}]`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		m, err := V2.Decode(frame, false)
		if err != nil {
			b.Fatal(err)
		}
		benchString = m.Topic
	}
}

func BenchmarkDecodeV2TextHeartbeat(b *testing.B) {
	frame := []byte(`[null,"42","phoenix","heartbeat",{}]`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		m, err := V2.Decode(frame, false)
		if err != nil {
			b.Fatal(err)
		}
		benchString = m.Topic
	}
}

func BenchmarkDecodeV2TextLarge(b *testing.B) {
	items := make([]string, 500)
	for i := range items {
		items[i] = fmt.Sprintf(`{"id":%d,"name":"item %d \u00e9","ok":true,"v":[1.5,null]}`, i, i)
	}
	frame := []byte(`["3","7","room:lobby","sync",{"items":[` + strings.Join(items, ",") + `]}]`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		m, err := V2.Decode(frame, false)
		if err != nil {
			b.Fatal(err)
		}
		benchString = m.Topic
	}
}

func BenchmarkDecodeV1(b *testing.B) {
	frame := []byte(`{"topic":"room:lobby","event":"new_msg","payload":{"body":"hello world","user":{"id":1,"name":"alice"},"tags":["a","b"]},"ref":"7","join_ref":"3"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		m, err := V1.Decode(frame, false)
		if err != nil {
			b.Fatal(err)
		}
		benchString = m.Topic
	}
}

func BenchmarkDecodeV2Binary(b *testing.B) {
	frame := append(msgHex("00 01 01 0a 06 33 37"), "room:lobbyupload"...)
	frame = append(frame, make([]byte, 1024)...)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		m, err := V2.Decode(frame, true)
		if err != nil {
			b.Fatal(err)
		}
		benchString = m.Topic
	}
}

func BenchmarkEncodeBroadcastV2(b *testing.B) {
	p := jp(`{"body":"hello world","user":{"id":1,"name":"alice"},"tags":["a","b"]}`)
	b.ReportAllocs()
	for b.Loop() {
		out, err := V2.EncodeBroadcast("room:lobby", "new_msg", p)
		if err != nil {
			b.Fatal(err)
		}
		benchBytes = out
	}
}

func BenchmarkEncodeBroadcastV2Binary(b *testing.B) {
	p := bp(make([]byte, 1024)...)
	b.ReportAllocs()
	for b.Loop() {
		out, err := V2.EncodeBroadcast("room:lobby", "new_msg", p)
		if err != nil {
			b.Fatal(err)
		}
		benchBytes = out
	}
}

func BenchmarkEncodeReplyV2(b *testing.B) {
	j, r := Ref(`"3"`), Ref(`"7"`)
	p := jp(`{"id":42}`)
	b.ReportAllocs()
	for b.Loop() {
		out, err := V2.EncodeReply(j, r, "room:lobby", "ok", p)
		if err != nil {
			b.Fatal(err)
		}
		benchBytes = out
	}
}

func BenchmarkEncodePushV1(b *testing.B) {
	p := jp(`{"body":"hello world","user":{"id":1,"name":"alice"},"tags":["a","b"]}`)
	j := Ref(`"3"`)
	b.ReportAllocs()
	for b.Loop() {
		out, err := V1.EncodeMessage(j, nil, "room:lobby", "new_msg", p)
		if err != nil {
			b.Fatal(err)
		}
		benchBytes = out
	}
}
