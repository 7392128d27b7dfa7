// Package etf encodes and decodes the part of the Erlang External Term Format
// (the output of :erlang.term_to_binary/1) that Phoenix tokens carry: numbers,
// atoms, binaries, lists, tuples and maps.
//
// The package has no atom or tuple type of its own: [Encode] and [Decode]
// take the caller's as type parameters, A (a string type) for atoms and T
// (a []any type) for tuples, so that a public package (such as token, with
// token.Atom and token.Tuple) exposes only its own types. A and T must be
// defined types, not string or []any themselves, or strings and lists would
// be taken for atoms and tuples.
//
// Go values map to terms as follows:
//
//	nil, true, false         atoms nil, true, false (and back)
//	A                        atom (SMALL_ATOM_UTF8_EXT, or ATOM_UTF8_EXT if over 255 bytes)
//	signed/unsigned integers SMALL_INTEGER_EXT, INTEGER_EXT or SMALL_BIG_EXT, as Erlang picks
//	*big.Int                 integer, at most 255 bytes of magnitude
//	float32, float64         NEW_FLOAT_EXT (NaN and infinities are refused)
//	string, []byte           binary (an Elixir string)
//	T                        tuple
//	[]any, other slices      list; NIL_EXT when empty, STRING_EXT when every element
//	and arrays               is an integer in 0..255 and there are at most 65535 (as Erlang)
//	maps                     map, keys written in a deterministic order
//
// Decode returns int64 for integers that fit (*big.Int otherwise), float64,
// string for binaries, A, nil, bool, T, []any for lists (a STRING_EXT,
// Erlang's compact form of a list of bytes, is a list too: []any of int64) and
// map[any]any for maps. Map keys must be scalars (numbers, atoms, binaries);
// maps with list, tuple or map keys are refused, as are duplicate keys.
//
// Decoding is strict: the input must start with the version byte 131 and hold
// exactly one term; pids, references, funs, ports, bit strings, improper lists,
// old-style floats and every other tag are refused; length fields are checked
// against the remaining input before anything is allocated; nesting and the
// number of terms are bounded by [MaxDepth] and [MaxElements]. A compressed
// term (tag 80) is accepted at the top level when its declared size is at most
// [MaxUncompressedSize] and the zlib stream inflates to exactly that size.
package etf

import (
	"bytes"
	"cmp"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/bits"
	"reflect"
	"slices"
	"unicode/utf8"
)

// Limits enforced by Decode and, for MaxDepth, by Encode.
const (
	// MaxDepth is how deeply lists, tuples and maps may nest: a container
	// holding a container holding ... MaxDepth containers in all.
	MaxDepth = 32
	// MaxElements is the most terms one Decode call produces; every byte of
	// a STRING_EXT counts as one term.
	MaxElements = 1 << 16
	// MaxUncompressedSize is the largest declared size of a compressed term
	// that Decode inflates.
	MaxUncompressedSize = 1 << 16
)

const (
	tagNewFloat      = 70
	tagCompressed    = 80
	tagSmallInteger  = 97
	tagInteger       = 98
	tagAtom          = 100 // ATOM_EXT, Latin-1
	tagSmallTuple    = 104
	tagLargeTuple    = 105
	tagNil           = 106
	tagString        = 107
	tagList          = 108
	tagBinary        = 109
	tagSmallBig      = 110
	tagSmallAtom     = 115 // SMALL_ATOM_EXT, Latin-1
	tagMap           = 116
	tagAtomUTF8      = 118
	tagSmallAtomUTF8 = 119
	tagVersion       = 131
)

// Decode decodes one term, encoded with its version byte as by
// :erlang.term_to_binary/1, and refuses anything outside the subset described
// in the package documentation. Atoms decode to A (except nil, true and
// false), tuples to T.
func Decode[A ~string, T ~[]any](data []byte) (any, error) {
	if len(data) == 0 || data[0] != tagVersion {
		return nil, errors.New("etf: missing version byte 131")
	}
	b := data[1:]
	if len(b) > 0 && b[0] == tagCompressed {
		var err error
		if b, err = inflate(b[1:]); err != nil {
			return nil, err
		}
	}
	d := decoder[A, T]{b: b}
	v := d.term(0)
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d trailing bytes", len(d.b)-d.off)
	}
	if d.err != nil {
		return nil, d.err
	}
	return v, nil
}

func inflate(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, errors.New("etf: truncated compressed term")
	}
	size := binary.BigEndian.Uint32(b)
	if size > MaxUncompressedSize {
		return nil, fmt.Errorf("etf: compressed term of %d bytes exceeds %d", size, MaxUncompressedSize)
	}
	r := bytes.NewReader(b[4:])
	zr, err := zlib.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("etf: compressed term: %w", err)
	}
	out := make([]byte, size)
	if _, err := io.ReadFull(zr, out); err != nil {
		return nil, fmt.Errorf("etf: compressed term: %w", err)
	}
	// The stream must end (with a valid checksum) exactly at the declared
	// size and at the end of the input.
	if n, err := io.Copy(io.Discard, io.LimitReader(zr, 1)); err != nil || n != 0 || r.Len() != 0 {
		return nil, errors.New("etf: compressed term does not match its declared size")
	}
	return out, nil
}

// decoder reads terms from b. The first error sticks: later reads return
// zero values, so callers check err once after a group of reads.
type decoder[A ~string, T ~[]any] struct {
	b     []byte
	off   int
	elems int
	err   error
}

func (d *decoder[A, T]) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("etf: "+format+" (offset %d)", append(args, d.off)...)
	}
}

func (d *decoder[A, T]) read(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.off {
		d.fail("truncated input")
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

func (d *decoder[A, T]) uint(size int) uint64 {
	var n uint64
	for _, c := range d.read(size) {
		n = n<<8 | uint64(c)
	}
	return n
}

// length reads a size-byte length field and checks that the remaining input
// can hold that many items of at least unit bytes each.
func (d *decoder[A, T]) length(size, unit int) int {
	n := d.uint(size)
	if d.err == nil && n*uint64(unit) > uint64(len(d.b)-d.off) {
		d.fail("declared length %d exceeds the input", n)
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}

// count reserves n more terms against MaxElements.
func (d *decoder[A, T]) count(n int) {
	if n > MaxElements-d.elems {
		d.fail("more than %d terms", MaxElements)
		return
	}
	d.elems += n
}

// enter checks that a container may start at depth.
func (d *decoder[A, T]) enter(depth int) {
	if depth >= MaxDepth {
		d.fail("nesting deeper than %d", MaxDepth)
	}
}

func (d *decoder[A, T]) term(depth int) any {
	d.count(1)
	tag := d.uint(1)
	if d.err != nil {
		return nil
	}
	switch tag {
	case tagSmallInteger:
		return int64(d.uint(1))
	case tagInteger:
		return int64(int32(d.uint(4)))
	case tagSmallBig:
		n := int(d.uint(1))
		sign := d.uint(1)
		digits := d.read(n)
		if d.err == nil && sign > 1 {
			d.fail("invalid sign byte %d", sign)
		}
		if d.err != nil {
			return nil
		}
		be := make([]byte, n)
		for i, c := range digits {
			be[n-1-i] = c
		}
		x := new(big.Int).SetBytes(be)
		if sign == 1 {
			x.Neg(x)
		}
		if x.IsInt64() {
			return x.Int64()
		}
		return x
	case tagNewFloat:
		f := math.Float64frombits(d.uint(8))
		if d.err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			d.fail("non-finite float")
		}
		return f
	case tagSmallAtomUTF8, tagSmallAtom:
		return d.atom(d.read(d.length(1, 1)), tag == tagSmallAtomUTF8)
	case tagAtomUTF8, tagAtom:
		return d.atom(d.read(d.length(2, 1)), tag == tagAtomUTF8)
	case tagBinary:
		return string(d.read(d.length(4, 1)))
	case tagNil:
		d.enter(depth)
		return []any{}
	case tagString:
		d.enter(depth)
		p := d.read(d.length(2, 1))
		d.count(len(p))
		if d.err != nil {
			return nil
		}
		l := make([]any, len(p))
		for i, c := range p {
			l[i] = int64(c)
		}
		return l
	case tagList:
		l := d.elements(d.length(4, 1), depth)
		if d.err == nil && d.uint(1) != tagNil {
			d.fail("improper list")
		}
		return l
	case tagSmallTuple:
		return T(d.elements(d.length(1, 1), depth))
	case tagLargeTuple:
		return T(d.elements(d.length(4, 1), depth))
	case tagMap:
		return d.mapTerm(d.length(4, 2), depth)
	}
	d.off--
	d.fail("unsupported tag %d", tag)
	return nil
}

func (d *decoder[A, T]) atom(p []byte, isUTF8 bool) any {
	if d.err != nil {
		return nil
	}
	name := string(p)
	if !isUTF8 { // Latin-1: every byte is a code point
		r := make([]rune, len(p))
		for i, c := range p {
			r[i] = rune(c)
		}
		name = string(r)
	} else if !utf8.ValidString(name) {
		d.fail("atom is not valid UTF-8")
		return nil
	}
	if utf8.RuneCountInString(name) > 255 {
		d.fail("atom longer than 255 characters")
		return nil
	}
	switch name {
	case "nil":
		return nil
	case "true":
		return true
	case "false":
		return false
	}
	return A(name)
}

func (d *decoder[A, T]) elements(n, depth int) []any {
	d.enter(depth)
	if d.err != nil {
		return nil
	}
	if n > MaxElements-d.elems {
		d.fail("more than %d terms", MaxElements)
		return nil
	}
	l := make([]any, n)
	for i := range l {
		if l[i] = d.term(depth + 1); d.err != nil {
			return nil
		}
	}
	return l
}

func (d *decoder[A, T]) mapTerm(n, depth int) any {
	d.enter(depth)
	if d.err != nil {
		return nil
	}
	if n > (MaxElements-d.elems)/2 {
		d.fail("more than %d terms", MaxElements)
		return nil
	}
	m := make(map[any]any, n)
	var bigKeys map[string]bool // *big.Int keys compare by pointer in m
	for range n {
		k, v := d.term(depth+1), d.term(depth+1)
		if d.err != nil {
			return nil
		}
		switch k := k.(type) {
		case []any, T, map[any]any:
			d.fail("map key is a list, tuple or map")
			return nil
		case *big.Int:
			if bigKeys == nil {
				bigKeys = map[string]bool{}
			}
			s := k.String()
			if bigKeys[s] {
				d.fail("duplicate map key")
				return nil
			}
			bigKeys[s] = true
		}
		size := len(m)
		if m[k] = v; len(m) == size {
			d.fail("duplicate map key")
			return nil
		}
	}
	return m
}

// Encode encodes v with a leading version byte, as :erlang.term_to_binary/1
// does, following the mapping in the package documentation. It refuses
// unsupported types (structs, pointers other than *big.Int, channels, ...),
// non-finite floats, invalid atoms, maps whose keys collide once encoded or
// are lists, tuples or maps, and nesting deeper than [MaxDepth] (which also
// stops cyclic values). Values of type A are atoms, of type T tuples.
func Encode[A ~string, T ~[]any](v any) ([]byte, error) {
	e := encoder[A, T]{b: []byte{tagVersion}}
	if err := e.term(v, 0); err != nil {
		return nil, err
	}
	return e.b, nil
}

type encoder[A ~string, T ~[]any] struct{ b []byte }

func (e *encoder[A, T]) term(v any, depth int) error {
	switch x := v.(type) {
	case nil:
		return e.atom("nil")
	case bool:
		if x {
			return e.atom("true")
		}
		return e.atom("false")
	case A:
		return e.atom(string(x))
	case *big.Int:
		if x == nil {
			return e.atom("nil")
		}
		return e.bigInt(x)
	case T:
		return e.seq(reflect.ValueOf(x), depth, true)
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Bool:
		return e.term(rv.Bool(), depth)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.int(rv.Int())
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		if u := rv.Uint(); u <= math.MaxInt64 {
			e.int(int64(u))
		} else {
			e.bigMagnitude(u, false)
		}
		return nil
	case reflect.Float32, reflect.Float64:
		f := rv.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("etf: cannot encode non-finite float %v", f)
		}
		e.b = binary.BigEndian.AppendUint64(append(e.b, tagNewFloat), math.Float64bits(f))
		return nil
	case reflect.String:
		return e.binary(rv.String())
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return e.binary(string(rv.Bytes()))
		}
		return e.seq(rv, depth, false)
	case reflect.Array:
		return e.seq(rv, depth, false)
	case reflect.Map:
		return e.mapValue(rv, depth)
	}
	return fmt.Errorf("etf: cannot encode %T", v)
}

func (e *encoder[A, T]) atom(name string) error {
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > 255 {
		return fmt.Errorf("etf: invalid atom %q: not UTF-8 or longer than 255 characters", name)
	}
	if len(name) <= 255 {
		e.b = append(e.b, tagSmallAtomUTF8, byte(len(name)))
	} else {
		e.b = binary.BigEndian.AppendUint16(append(e.b, tagAtomUTF8), uint16(len(name)))
	}
	e.b = append(e.b, name...)
	return nil
}

func (e *encoder[A, T]) binary(s string) error {
	if uint64(len(s)) > math.MaxUint32 {
		return errors.New("etf: binary too long")
	}
	e.b = binary.BigEndian.AppendUint32(append(e.b, tagBinary), uint32(len(s)))
	e.b = append(e.b, s...)
	return nil
}

func (e *encoder[A, T]) int(i int64) {
	switch {
	case i >= 0 && i <= 255:
		e.b = append(e.b, tagSmallInteger, byte(i))
	case i >= math.MinInt32 && i <= math.MaxInt32:
		e.b = binary.BigEndian.AppendUint32(append(e.b, tagInteger), uint32(i))
	default:
		u := uint64(i)
		if i < 0 {
			u = -u
		}
		e.bigMagnitude(u, i < 0)
	}
}

// bigMagnitude writes a SMALL_BIG_EXT of u (non-zero) with the fewest bytes.
func (e *encoder[A, T]) bigMagnitude(u uint64, neg bool) {
	n := (bits.Len64(u) + 7) / 8
	e.b = append(e.b, tagSmallBig, byte(n), b2u8(neg))
	for range n {
		e.b = append(e.b, byte(u))
		u >>= 8
	}
}

func (e *encoder[A, T]) bigInt(x *big.Int) error {
	if x.IsInt64() {
		e.int(x.Int64())
		return nil
	}
	mag := x.Bytes() // big-endian, no leading zeros
	if len(mag) > 255 {
		return errors.New("etf: integer too large")
	}
	e.b = append(e.b, tagSmallBig, byte(len(mag)), b2u8(x.Sign() < 0))
	for i := len(mag) - 1; i >= 0; i-- {
		e.b = append(e.b, mag[i])
	}
	return nil
}

func b2u8(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// seq writes a tuple or a list; lists of at most 65535 integers in 0..255
// become STRING_EXT, as Erlang writes them.
func (e *encoder[A, T]) seq(rv reflect.Value, depth int, tuple bool) error {
	if depth >= MaxDepth {
		return fmt.Errorf("etf: nesting deeper than %d", MaxDepth)
	}
	n := rv.Len()
	if uint64(n) > math.MaxUint32 {
		return errors.New("etf: too many elements")
	}
	switch {
	case tuple && n <= 255:
		e.b = append(e.b, tagSmallTuple, byte(n))
	case tuple:
		e.b = binary.BigEndian.AppendUint32(append(e.b, tagLargeTuple), uint32(n))
	case n == 0:
		e.b = append(e.b, tagNil)
		return nil
	default:
		if s, ok := byteList(rv); ok {
			e.b = binary.BigEndian.AppendUint16(append(e.b, tagString), uint16(n))
			e.b = append(e.b, s...)
			return nil
		}
		e.b = binary.BigEndian.AppendUint32(append(e.b, tagList), uint32(n))
	}
	for i := range n {
		if err := e.term(rv.Index(i).Interface(), depth+1); err != nil {
			return err
		}
	}
	if !tuple {
		e.b = append(e.b, tagNil)
	}
	return nil
}

func byteList(rv reflect.Value) ([]byte, bool) {
	n := rv.Len()
	if n > math.MaxUint16 {
		return nil, false
	}
	s := make([]byte, n)
	for i := range n {
		v := rv.Index(i)
		if v.Kind() == reflect.Interface {
			v = v.Elem()
		}
		var x int64 = -1
		switch v.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			x = v.Int()
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			if v.Uint() <= 255 {
				x = int64(v.Uint())
			}
		case reflect.Pointer:
			if b, ok := v.Interface().(*big.Int); ok && b != nil && b.IsInt64() {
				x = b.Int64()
			}
		}
		if x < 0 || x > 255 {
			return nil, false
		}
		s[i] = byte(x)
	}
	return s, true
}

func (e *encoder[A, T]) mapValue(rv reflect.Value, depth int) error {
	if depth >= MaxDepth {
		return fmt.Errorf("etf: nesting deeper than %d", MaxDepth)
	}
	type entry struct {
		key []byte // encoded, without version byte
		val any
	}
	entries := make([]entry, 0, rv.Len())
	for it := rv.MapRange(); it.Next(); {
		var ke encoder[A, T]
		if err := ke.term(it.Key().Interface(), depth+1); err != nil {
			return err
		}
		if r := keyRank(ke.b); r >= 3 && r <= 5 {
			return errors.New("etf: map key is a list, tuple or map")
		}
		entries = append(entries, entry{ke.b, it.Value().Interface()})
	}
	slices.SortFunc(entries, func(a, b entry) int { return compareKeys(a.key, b.key) })
	e.b = binary.BigEndian.AppendUint32(append(e.b, tagMap), uint32(len(entries)))
	for i, en := range entries {
		if i > 0 && bytes.Equal(entries[i-1].key, en.key) {
			return errors.New("etf: duplicate map key")
		}
		e.b = append(e.b, en.key...)
		if err := e.term(en.val, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// keyRank orders encoded keys by Erlang's term order of types: number <
// atom < tuple < map < list < binary (integers before floats).
func keyRank(k []byte) int {
	switch k[0] {
	case tagSmallInteger, tagInteger, tagSmallBig:
		return 0
	case tagNewFloat:
		return 1
	case tagSmallAtomUTF8, tagAtomUTF8:
		return 2
	case tagSmallTuple, tagLargeTuple:
		return 3
	case tagMap:
		return 4
	case tagNil, tagString, tagList:
		return 5
	}
	return 6
}

// compareKeys sorts encoded map keys deterministically: by type, then atoms
// and binaries by their text (Erlang's order for them), then by encoding.
func compareKeys(a, b []byte) int {
	if c := cmp.Compare(keyRank(a), keyRank(b)); c != 0 {
		return c
	}
	if c := bytes.Compare(keyText(a), keyText(b)); c != 0 {
		return c
	}
	return bytes.Compare(a, b)
}

func keyText(k []byte) []byte {
	switch k[0] {
	case tagSmallAtomUTF8:
		return k[2:]
	case tagAtomUTF8:
		return k[3:]
	case tagBinary:
		return k[5:]
	}
	return k
}
