package etf

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bigInt(s string) *big.Int {
	x, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return x
}

// Encodings produced by :erlang.term_to_binary/1 (OTP 26+).
var knownTerms = []struct {
	name string
	in   any    // Go value to encode
	hex  string // its encoding
	out  any    // what Decode returns
}{
	{"0", 0, "83 61 00", int64(0)},
	{"42", 42, "83 61 2A", int64(42)},
	{"255", uint8(255), "83 61 FF", int64(255)},
	{"256", 256, "83 62 00 00 01 00", int64(256)},
	{"1234", int64(1234), "83 62 00 00 04 D2", int64(1234)},
	{"-1", -1, "83 62 FF FF FF FF", int64(-1)},
	{"minint32", math.MinInt32, "83 62 80 00 00 00", int64(math.MinInt32)},
	{"maxint32", math.MaxInt32, "83 62 7F FF FF FF", int64(math.MaxInt32)},
	{"2^31", int64(1) << 31, "83 6E 04 00 00 00 00 80", int64(1) << 31},
	{"-2^31-1", int64(math.MinInt32) - 1, "83 6E 04 01 01 00 00 80", int64(math.MinInt32) - 1},
	{"signed_at", int64(1700000000000), "83 6E 06 00 00 68 E5 CF 8B 01", int64(1700000000000)},
	{"maxint64", int64(math.MaxInt64), "83 6E 08 00 FF FF FF FF FF FF FF 7F", int64(math.MaxInt64)},
	{"minint64", int64(math.MinInt64), "83 6E 08 01 00 00 00 00 00 00 00 80", int64(math.MinInt64)},
	{"maxuint64", uint64(math.MaxUint64), "83 6E 08 00 FF FF FF FF FF FF FF FF", bigInt("18446744073709551615")},
	{"2^64", bigInt("18446744073709551616"), "83 6E 09 00 00 00 00 00 00 00 00 00 01", bigInt("18446744073709551616")},
	{"-2^64", bigInt("-18446744073709551616"), "83 6E 09 01 00 00 00 00 00 00 00 00 01", bigInt("-18446744073709551616")},
	{"small big.Int", big.NewInt(7), "83 61 07", int64(7)},
	{"float", 1.5, "83 46 3F F8 00 00 00 00 00 00", 1.5},
	{"float32", float32(-2), "83 46 C0 00 00 00 00 00 00 00", -2.0},
	{"binary", "abc", "83 6D 00 00 00 03 61 62 63", "abc"},
	{"empty binary", "", "83 6D 00 00 00 00", ""},
	{"bytes", []byte{0, 255}, "83 6D 00 00 00 02 00 FF", "\x00\xff"},
	{"atom", Atom("ok"), "83 77 02 6F 6B", Atom("ok")},
	{"utf8 atom", Atom("é"), "83 77 02 C3 A9", Atom("é")},
	{"nil", nil, "83 77 03 6E 69 6C", nil},
	{"true", true, "83 77 04 74 72 75 65", true},
	{"false", false, "83 77 05 66 61 6C 73 65", false},
	{"empty list", []any{}, "83 6A", []any{}},
	{"nil slice", []any(nil), "83 6A", []any{}},
	{"charlist", []any{1, 2, 3}, "83 6B 00 03 01 02 03", []any{int64(1), int64(2), int64(3)}},
	{"int slice", []int{104, 105}, "83 6B 00 02 68 69", []any{int64(104), int64(105)}},
	{"list", []any{1, 300}, "83 6C 00 00 00 02 61 01 62 00 00 01 2C 6A", []any{int64(1), int64(300)}},
	{"list of strings", []string{"a"}, "83 6C 00 00 00 01 6D 00 00 00 01 61 6A", []any{"a"}},
	{"empty tuple", Tuple{}, "83 68 00", Tuple{}},
	{"tuple", Tuple{Atom("ok"), 1}, "83 68 02 77 02 6F 6B 61 01", Tuple{Atom("ok"), int64(1)}},
	{"empty map", map[string]any{}, "83 74 00 00 00 00", map[any]any{}},
	{"atom map", map[Atom]any{"user_id": 7}, "83 74 00 00 00 01 77 07 75 73 65 72 5F 69 64 61 07",
		map[any]any{Atom("user_id"): int64(7)}},
	{"binary keys in term order", map[string]int{"b": 1, "aa": 2},
		"83 74 00 00 00 02 6D 00 00 00 02 61 61 61 02 6D 00 00 00 01 62 61 01",
		map[any]any{"aa": int64(2), "b": int64(1)}},
	{"mixed keys", map[any]any{"s": 1, Atom("a"): 2, 3: 4},
		"83 74 00 00 00 03 61 03 61 04 77 01 61 61 02 6D 00 00 00 01 73 61 01",
		map[any]any{"s": int64(1), Atom("a"): int64(2), int64(3): int64(4)}},
	{"phoenix claims", Tuple{42, int64(1700000000000), 86400},
		"83 68 03 61 2A 6E 06 00 00 68 E5 CF 8B 01 62 00 01 51 80",
		Tuple{int64(42), int64(1700000000000), int64(86400)}},
}

func TestEncodeKnown(t *testing.T) {
	t.Parallel()
	for _, tc := range knownTerms {
		got, err := encode(tc.in)
		if err != nil {
			t.Errorf("%s: Encode: %v", tc.name, err)
			continue
		}
		if want := unhex(t, tc.hex); !bytes.Equal(got, want) {
			t.Errorf("%s: Encode = % X, want % X", tc.name, got, want)
		}
	}
}

func TestDecodeKnown(t *testing.T) {
	t.Parallel()
	for _, tc := range knownTerms {
		got, err := decode(unhex(t, tc.hex))
		if err != nil {
			t.Errorf("%s: Decode: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.out) {
			t.Errorf("%s: Decode = %#v, want %#v", tc.name, got, tc.out)
		}
	}
}

func TestDecodeOtherForms(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 200) // 400 bytes
	tests := []struct {
		name string
		in   []byte
		want any
	}{
		{"ATOM_EXT latin-1", unhex(t, "83 64 00 02 E9 74"), Atom("ét")},
		{"SMALL_ATOM_EXT", unhex(t, "83 73 02 6F 6B"), Atom("ok")},
		{"SMALL_ATOM_EXT nil", unhex(t, "83 73 03 6E 69 6C"), nil},
		{"ATOM_UTF8_EXT", unhex(t, "83 76 00 02 6F 6B"), Atom("ok")},
		{"ATOM_EXT true", unhex(t, "83 64 00 04 74 72 75 65"), true},
		{"LARGE_TUPLE_EXT", unhex(t, "83 69 00 00 00 01 61 01"), Tuple{int64(1)}},
		{"non-minimal big", unhex(t, "83 6E 02 01 05 00"), int64(-5)},
		{"empty big", unhex(t, "83 6E 00 00"), int64(0)},
		{"INTEGER_EXT small", unhex(t, "83 62 00 00 00 05"), int64(5)},
		{"empty STRING_EXT", unhex(t, "83 6B 00 00"), []any{}},
		{"empty LIST_EXT", unhex(t, "83 6C 00 00 00 00 6A"), []any{}},
		{"map order", unhex(t, "83 74 00 00 00 02 61 02 61 00 61 01 61 00"), map[any]any{int64(1): int64(0), int64(2): int64(0)}},
		{"long atom", append(unhex(t, "83 76 01 90"), long...), Atom(long)},
	}
	for _, tc := range tests {
		got, err := decode(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
		} else if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.name, got, tc.want)
		}
	}
}

func compressed(t testing.TB, term []byte, size uint32, extra []byte) []byte {
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write(term)
	w.Close()
	out := binary.BigEndian.AppendUint32([]byte{131, 80}, size)
	return append(append(out, z.Bytes()...), extra...)
}

func TestDecodeCompressed(t *testing.T) {
	t.Parallel()
	inner := unhex(t, "68 02 77 02 6F 6B 6D 00 00 00 03 61 62 63")
	got, err := decode(compressed(t, inner, uint32(len(inner)), nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Tuple{Atom("ok"), "abc"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, want %#v", got, want)
	}
	bad := map[string][]byte{
		"size too small": compressed(t, inner, uint32(len(inner)-1), nil),
		"size too large": compressed(t, inner, uint32(len(inner)+1), nil),
		"over cap":       compressed(t, make([]byte, MaxUncompressedSize+1), MaxUncompressedSize+1, nil),
		"trailing bytes": compressed(t, inner, uint32(len(inner)), []byte{0}),
		"inner trailing": compressed(t, append(inner, 0x6A), uint32(len(inner)+1), nil),
		"no size":        {131, 80, 0, 0},
		"not zlib":       {131, 80, 0, 0, 0, 1, 1, 2, 3, 4},
	}
	nested := compressed(t, inner, uint32(len(inner)), nil)[1:] // without version byte
	bad["nested compression"] = compressed(t, nested, uint32(len(nested)), nil)
	for name, in := range bad {
		if v, err := decode(in); err == nil {
			t.Errorf("%s: Decode = %#v, want error", name, v)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	deep := func(n int) []byte { // n nested one-element lists around []
		b := []byte{131}
		for range n - 1 {
			b = append(b, 108, 0, 0, 0, 1)
		}
		b = append(b, 106)
		for range n - 1 {
			b = append(b, 106)
		}
		return b
	}
	if _, err := decode(deep(MaxDepth)); err != nil {
		t.Fatalf("nesting of %d refused: %v", MaxDepth, err)
	}
	tests := map[string]string{
		"empty":                "",
		"no version":           "61 01",
		"wrong version":        "82 61 01",
		"version only":         "83",
		"trailing bytes":       "83 61 01 00",
		"two terms":            "83 6A 6A",
		"truncated integer":    "83 62 00 00",
		"truncated float":      "83 46 3F F8",
		"truncated big":        "83 6E 04 00 01",
		"big sign":             "83 6E 01 02 01",
		"binary huge length":   "83 6D FF FF FF FF 61",
		"binary short":         "83 6D 00 00 00 04 61 62 63",
		"list huge length":     "83 6C FF FF FF FF 6A",
		"list length":          "83 6C 00 00 00 02 61 01 6A",
		"tuple huge length":    "83 69 FF FF FF FF 61 01",
		"small tuple length":   "83 68 05 61 01",
		"map huge length":      "83 74 FF FF FF FF 61 01",
		"map odd":              "83 74 00 00 00 01 61 01",
		"string huge length":   "83 6B FF FF 01",
		"atom length":          "83 77 05 6F 6B",
		"improper list":        "83 6C 00 00 00 01 61 01 61 02",
		"list tail string":     "83 6C 00 00 00 01 61 01 6B 00 00",
		"missing tail":         "83 6C 00 00 00 01 61 01",
		"nan":                  "83 46 7F F8 00 00 00 00 00 00",
		"inf":                  "83 46 7F F0 00 00 00 00 00 00",
		"invalid utf8 atom":    "83 77 01 FF",
		"duplicate keys":       "83 74 00 00 00 02 61 01 6A 61 01 6A",
		"duplicate mixed ints": "83 74 00 00 00 02 61 01 6A 62 00 00 00 01 6A",
		"duplicate atoms":      "83 74 00 00 00 02 77 01 61 6A 73 01 61 6A",
		"duplicate big keys":   "83 74 00 00 00 02 6E 09 00 00 00 00 00 00 00 00 00 01 6A 6E 0A 00 00 00 00 00 00 00 00 00 01 00 6A",
		"duplicate zeros":      "83 74 00 00 00 02 46 00 00 00 00 00 00 00 00 6A 46 80 00 00 00 00 00 00 00 6A",
		"list key":             "83 74 00 00 00 01 6A 61 01",
		"tuple key":            "83 74 00 00 00 01 68 00 61 01",
		"map key":              "83 74 00 00 00 01 74 00 00 00 00 61 01",
		"old float":            "83 63 31 2E 35 00",
		"pid":                  "83 58 77 01 61 00 00 00 01 00 00 00 00 00 00 00 00",
		"reference":            "83 5A 00 01 77 01 61 00 00 00 00 00 00 00 01",
		"fun":                  "83 70 00 00 00 00",
		"export":               "83 71 77 01 61 77 01 62 61 01",
		"port":                 "83 59 77 01 61 00 00 00 00 00 00 00 00 00 00 00 01",
		"bit binary":           "83 4D 00 00 00 01 03 FF",
		"large big":            "83 6F 00 00 00 01 00 01",
		"version inside":       "83 83 61 01",
		"compressed inside":    "83 68 01 50 00 00 00 01 78 9C",
	}
	for name, h := range tests {
		if v, err := decode(unhex(t, h)); err == nil {
			t.Errorf("%s: Decode = %#v, want error", name, v)
		}
	}
	if _, err := decode(deep(MaxDepth + 1)); err == nil {
		t.Error("nesting deeper than MaxDepth accepted")
	}
	long := append(unhex(t, "83 76 02 00"), strings.Repeat("é", 256)...) // 256 characters
	if _, err := decode(long); err == nil {
		t.Error("atom of 256 characters accepted")
	}
	latin := append(unhex(t, "83 64 01 00"), strings.Repeat("a", 256)...)
	if _, err := decode(latin); err == nil {
		t.Error("Latin-1 atom of 256 characters accepted")
	}
	// Two STRING_EXTs of 65535 bytes are more than MaxElements terms.
	many := []byte{131, 104, 2}
	for range 2 {
		many = append(many, 107, 0xFF, 0xFF)
		many = append(many, make([]byte, 0xFFFF)...)
	}
	if _, err := decode(many); err == nil {
		t.Error("more than MaxElements terms accepted")
	}
	// Every tag that is not listed in the package documentation is refused.
	ok := map[byte]bool{70: true, 80: true, 97: true, 98: true, 100: true, 104: true, 105: true,
		106: true, 107: true, 108: true, 109: true, 110: true, 115: true, 116: true, 118: true, 119: true}
	for tag := range 256 {
		if !ok[byte(tag)] {
			in := append([]byte{131, byte(tag)}, make([]byte, 16)...)
			if _, err := decode(in); err == nil {
				t.Errorf("tag %d accepted", tag)
			}
		}
	}
}

func TestDecodeTruncated(t *testing.T) {
	t.Parallel()
	for _, tc := range knownTerms {
		full := unhex(t, tc.hex)
		for i := range len(full) {
			if v, err := decode(full[:i]); err == nil {
				t.Errorf("%s: prefix of %d bytes decoded to %#v", tc.name, i, v)
			}
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	t.Parallel()
	cyclic := []any{nil}
	cyclic[0] = cyclic
	deep := any(1)
	for range MaxDepth + 1 {
		deep = []any{deep}
	}
	huge := new(big.Int).Lsh(big.NewInt(1), 8*255)
	tests := map[string]any{
		"struct":           struct{}{},
		"pointer":          new(int),
		"chan":             make(chan int),
		"func":             func() {},
		"nan":              math.NaN(),
		"inf":              math.Inf(-1),
		"cyclic":           cyclic,
		"deep":             deep,
		"invalid atom":     Atom("\xff"),
		"long atom":        Atom(strings.Repeat("a", 256)),
		"huge int":         huge,
		"duplicate keys":   map[any]any{nil: 1, Atom("nil"): 2},
		"duplicate ints":   map[any]any{1: 1, int64(1): 2},
		"array key":        map[[1]int]int{{1}: 1},
		"bad element":      []any{1, struct{}{}},
		"bad map value":    map[string]any{"a": func() {}},
		"bad tuple member": Tuple{make(chan int)},
	}
	for name, v := range tests {
		if b, err := encode(v); err == nil {
			t.Errorf("%s: Encode = % X, want error", name, b)
		}
	}
	if _, err := encode(new(big.Int).Sub(huge, big.NewInt(1))); err != nil {
		t.Errorf("255-byte integer refused: %v", err)
	}
	if b, err := encode(Atom(strings.Repeat("é", 255))); err != nil || b[1] != tagAtomUTF8 {
		t.Errorf("255-character atom of 510 bytes: % .4X, %v; want ATOM_UTF8_EXT", b, err)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	long := make([]any, 70000)
	for i := range long {
		long[i] = i % 256
	}
	values := []any{
		map[string]any{"user": map[Atom]any{"id": 7, "roles": []any{Atom("admin"), "x"}}, "ok": true, "none": nil},
		Tuple{Atom("error"), Tuple{1.25, -7, bigInt("-99999999999999999999999")}},
		[]any{[]any{}, Tuple{}, map[any]any{}, ""},
		make([]any, 300),
		Tuple(make([]any, 300)),
		long[:65535], // STRING_EXT: 65536 terms, the most Decode accepts
		long[:65536], // LIST_EXT
		map[any]any{-1.5: 1, 2.5: 2, int64(-3): 3, nil: 4, false: 5, "z": 6, Atom("y"): 7},
	}
	for i, v := range values {
		b, err := encode(v)
		if err != nil {
			t.Fatalf("%d: Encode: %v", i, err)
		}
		got, err := decode(b)
		if i == 6 { // 65538 terms
			if err == nil {
				t.Fatalf("%d: Decode accepted more than MaxElements terms", i)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%d: Decode: %v", i, err)
		}
		b2, err := encode(got)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("%d: re-encoding differs (%v):\n% X\n% X", i, err, b, b2)
		}
	}
}

func FuzzETFDecode(f *testing.F) {
	for _, tc := range knownTerms {
		f.Add(unhex(f, tc.hex))
	}
	inner := unhex(f, "68 02 77 02 6F 6B 6D 00 00 00 03 61 62 63")
	f.Add(compressed(f, inner, uint32(len(inner)), nil))
	f.Add(unhex(f, "83 64 00 02 E9 74"))
	f.Add(unhex(f, "83 74 00 00 00 02 46 00 00 00 00 00 00 00 00 6A 46 80 00 00 00 00 00 00 00 6A"))
	f.Add(unhex(f, "83 74 00 00 00 01 6E 09 00 00 00 00 00 00 00 00 00 01 6A"))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decode(data)
		if err != nil {
			return
		}
		b, err := encode(v)
		if err != nil {
			t.Fatalf("decoded %#v but cannot encode it: %v", v, err)
		}
		v2, err := decode(b)
		if err != nil {
			t.Fatalf("cannot decode re-encoded % X: %v", b, err)
		}
		if !hasBigKey(v) && !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip changed %#v into %#v", v, v2)
		}
		if b2, err := encode(v2); err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("encoding not stable: % X then % X (%v)", b, b2, err)
		}
	})
}

// hasBigKey reports whether v holds a map with a *big.Int key, which
// reflect.DeepEqual compares by pointer.
func hasBigKey(v any) bool {
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if hasBigKey(e) {
				return true
			}
		}
	case Tuple:
		return hasBigKey([]any(v))
	case map[any]any:
		for k, e := range v {
			if _, ok := k.(*big.Int); ok || hasBigKey(e) {
				return true
			}
		}
	}
	return false
}
