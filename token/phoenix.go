package token

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/phxgo/phx/internal/etf"
)

// Atom is an Erlang atom in the data of a [PhoenixSigner] token, such as
// Elixir's :user_id: Sign writes an Atom as an atom (a plain string is a
// binary, an Elixir string), and Verify returns atoms as Atom. The atoms
// nil, true and false are Go's nil, true and false instead. Only use atoms
// that the Elixir application already knows: Phoenix.Token.verify refuses
// terms with unknown atoms.
type Atom string

// Tuple is an Erlang tuple in the data of a [PhoenixSigner] token, such as
// Elixir's {:user, 7}: Sign writes a Tuple as a tuple (other slices are
// lists), and Verify returns tuples as Tuple.
type Tuple []any

// Phoenix.Token's defaults (Plug.Crypto.KeyGenerator, MessageVerifier).
const (
	phoenixKeyIterations = 1000
	phoenixKeyLen        = 32
	phoenixHS256         = "SFMyNTY" // base64url("HS256")
	phoenixHS384         = "SFMzODQ"
	phoenixHS512         = "SFM1MTI"
	phoenixLegacyMaxAge  = 86400
)

// PhoenixSigner signs and verifies tokens in the format of Elixir's
// Phoenix.Token (Plug.Crypto), so that a Go service sharing secret_key_base
// with a Phoenix application accepts the tokens it makes with
// Phoenix.Token.sign(endpoint, salt, data) and makes tokens it accepts with
// Phoenix.Token.verify(endpoint, salt, token). For tokens only Go services
// use, prefer [Signer]. PhoenixSigner does not implement Phoenix.Token.encrypt.
//
// Format: "SFMyNTY." + b64(term) + "." + b64(HMAC-SHA256(key, everything
// before the second dot)), where b64 is URL-safe base64 without padding,
// term is :erlang.term_to_binary({data, signed_at_ms, max_age_seconds}), and
// key is PBKDF2-HMAC-SHA256(secret_key_base, salt, 1000 iterations, 32
// bytes), Phoenix's defaults for key_iterations, key_length and key_digest.
// Verify also accepts the headers SFMzODQ and SFM1MTI (HMAC-SHA384 and
// -SHA512, Phoenix's :digest option), and the older terms {data, signed_at_ms}
// and %{data: data, signed: signed_at_ms}, whose max age is 86400 seconds.
//
// Data maps to Erlang terms as follows: nil, true and false are the atoms
// nil, true and false; [Atom] is an atom; Go integers are integers; float64
// and float32 are floats; string and []byte are binaries (Elixir strings);
// [Tuple] is a tuple; other slices and arrays are lists; maps are maps
// (map[Atom]any for Elixir's %{user_id: 7}, map[string]any for
// %{"user_id" => 7}); *big.Int is an integer. Verify returns int64 for
// integers (*big.Int beyond int64), float64, string for binaries, nil, bool,
// Atom, Tuple, []any for lists (including charlists: 'ab' is []any{int64(97),
// int64(98)}), and map[any]any for maps. Pids, references, funs, ports, bit
// strings, improper lists, maps keyed by lists, tuples or maps, terms nested
// more than 32 deep and other exotic terms make a token invalid.
//
// A PhoenixSigner is safe for concurrent use.
type PhoenixSigner struct {
	key    []byte
	maxAge time.Duration
	now    func() time.Time
}

// NewPhoenixSigner returns a PhoenixSigner for the Phoenix application's
// secret_key_base and the salt it passes to Phoenix.Token. secretKeyBase
// must be at least MinSecretLen bytes (else the error wraps
// [ErrSecretTooShort]); Phoenix generates 64. The key is derived once, here.
// opts may be nil; its MaxAge is the max age Sign writes into tokens.
func NewPhoenixSigner(secretKeyBase []byte, salt string, opts *Options) (*PhoenixSigner, error) {
	if len(secretKeyBase) < MinSecretLen {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrSecretTooShort, len(secretKeyBase), MinSecretLen)
	}
	key, err := pbkdf2.Key(sha256.New, string(secretKeyBase), []byte(salt), phoenixKeyIterations, phoenixKeyLen)
	if err != nil {
		return nil, fmt.Errorf("token: derive key: %w", err)
	}
	s := &PhoenixSigner{key: key}
	s.maxAge, s.now = opts.resolve()
	return s, nil
}

// Sign returns a token holding data, the current time and the signer's max
// age, as Phoenix.Token.sign does. The max age is written in whole seconds,
// or as a float if it has a fraction of a second. Sign fails if data cannot
// be mapped to a term (see [PhoenixSigner]) or the token would be longer than
// [MaxLen].
func (s *PhoenixSigner) Sign(data any) (string, error) {
	var maxAge any
	switch {
	case s.maxAge < 0:
		maxAge = 0
	case s.maxAge%time.Second == 0:
		maxAge = int64(s.maxAge / time.Second)
	default:
		maxAge = s.maxAge.Seconds()
	}
	term, err := etf.Encode[Atom, Tuple](Tuple{data, s.now().UnixMilli(), maxAge})
	if err != nil {
		return "", fmt.Errorf("token: data: %w", err)
	}
	return s.sign(phoenixHS256, sha256.New, term)
}

func (s *PhoenixSigner) sign(header string, h func() hash.Hash, term []byte) (string, error) {
	tok := header + "." + b64.EncodeToString(term)
	m := hmac.New(h, s.key)
	m.Write([]byte(tok))
	return checkSignedLen(tok + "." + b64.EncodeToString(m.Sum(nil)))
}

// Verify checks a token made by Phoenix.Token.sign or Sign with the same
// secret_key_base and salt and returns its data, as Phoenix.Token.verify
// does without a :max_age option: the token expires after the max age
// written in it (never if that is the atom infinity; at once if it is 0 or
// less). Errors wrap [ErrMissing] for an empty token, [ErrExpired] for an
// expired one, and [ErrInvalid] for anything else wrong with it, including a
// signing time more than a minute in the future.
func (s *PhoenixSigner) Verify(token string) (any, error) {
	return s.verify(token, 0, false)
}

// VerifyMaxAge is Verify with maxAge in place of the max age written in the
// token, as Phoenix.Token.verify's :max_age option. The token is expired when
// more than maxAge has passed since it was signed (in whole milliseconds); a
// maxAge of zero or less makes every token expired.
func (s *PhoenixSigner) VerifyMaxAge(token string, maxAge time.Duration) (any, error) {
	return s.verify(token, maxAge, true)
}

func (s *PhoenixSigner) verify(token string, maxAge time.Duration, override bool) (any, error) {
	if err := checkSyntax(token); err != nil {
		return nil, err
	}
	header, rest, ok1 := strings.Cut(token, ".")
	enc, sigEnc, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return nil, ErrInvalid
	}
	var h func() hash.Hash
	switch header {
	case phoenixHS256:
		h = sha256.New
	case phoenixHS384:
		h = sha512.New384
	case phoenixHS512:
		h = sha512.New
	default:
		return nil, ErrInvalid
	}
	sig, err := b64.DecodeString(sigEnc)
	if err != nil {
		return nil, ErrInvalid
	}
	m := hmac.New(h, s.key)
	m.Write([]byte(token[:len(header)+1+len(enc)]))
	if !hmac.Equal(sig, m.Sum(nil)) {
		return nil, ErrInvalid
	}
	plain, err := b64.DecodeString(enc)
	if err != nil {
		return nil, ErrInvalid
	}
	term, err := etf.Decode[Atom, Tuple](plain)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	data, signed, maxAgeMs, ok := phoenixClaims(term)
	if !ok {
		return nil, fmt.Errorf("%w: unexpected term", ErrInvalid)
	}
	if override {
		maxAgeMs = durationMs(maxAge)
	}
	if err := checkAge(signed, s.now().UnixMilli(), maxAgeMs); err != nil {
		return nil, err
	}
	return data, nil
}

// phoenixClaims takes apart the shapes Plug.Crypto accepts. maxAgeMs is -1
// for a max age of zero or less, and math.MaxInt64 for infinity.
func phoenixClaims(term any) (data any, signed, maxAgeMs int64, ok bool) {
	var signedTerm, maxAge any = nil, int64(phoenixLegacyMaxAge)
	switch t := term.(type) {
	case Tuple:
		switch len(t) {
		case 3:
			data, signedTerm, maxAge = t[0], t[1], t[2]
		case 2:
			data, signedTerm = t[0], t[1]
		default:
			return nil, 0, 0, false
		}
	case map[any]any: // %{data: data, signed: signed}; other keys ignored, as in Elixir
		var okData, okSigned bool
		data, okData = t[Atom("data")]
		signedTerm, okSigned = t[Atom("signed")]
		if !okData || !okSigned {
			return nil, 0, 0, false
		}
	default:
		return nil, 0, 0, false
	}
	if signed, ok = signedTerm.(int64); !ok {
		return nil, 0, 0, false
	}
	switch a := maxAge.(type) {
	case int64:
		switch {
		case a <= 0:
			maxAgeMs = -1
		case a > math.MaxInt64/1000:
			maxAgeMs = math.MaxInt64
		default:
			maxAgeMs = a * 1000
		}
	case float64: // Elixir: trunc(max_age * 1000)
		switch ms := a * 1000; {
		case a <= 0:
			maxAgeMs = -1
		case ms >= math.MaxInt64:
			maxAgeMs = math.MaxInt64
		default:
			maxAgeMs = int64(ms)
		}
	case *big.Int: // beyond int64
		maxAgeMs = math.MaxInt64
		if a.Sign() < 0 {
			maxAgeMs = -1
		}
	case Atom:
		if a != "infinity" {
			return nil, 0, 0, false
		}
		maxAgeMs = math.MaxInt64
	default:
		return nil, 0, 0, false
	}
	return data, signed, maxAgeMs, true
}
