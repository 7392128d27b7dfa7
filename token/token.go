package token

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Errors returned when a token is refused or a signer cannot be made. Test
// for them with errors.Is: the errors returned may wrap them with details.
var (
	// ErrInvalid reports a token that is malformed, forged, tampered with,
	// signed with another secret or salt, longer than MaxLen, or signed in
	// the future.
	ErrInvalid = errors.New("token: invalid")
	// ErrExpired reports an authentic token older than its max age.
	ErrExpired = errors.New("token: expired")
	// ErrMissing reports an empty token string.
	ErrMissing = errors.New("token: missing")
	// ErrSecretTooShort reports a secret shorter than MinSecretLen bytes.
	ErrSecretTooShort = errors.New("token: secret too short")
)

// MaxLen is the length in bytes of the longest token that a [Signer] or a
// [PhoenixSigner] accepts: longer strings are refused with [ErrInvalid]
// before any other work (as are strings holding bytes other than A-Z, a-z,
// 0-9, '-', '_' and '.'), and signing data whose token would be longer
// fails. 8 KiB fits in a URL query string.
const MaxLen = 8 << 10

// MinSecretLen is the length in bytes of the shortest secret accepted by
// [NewSigner] and [NewPhoenixSigner].
const MinSecretLen = 32

const (
	defaultMaxAge = 24 * time.Hour
	// clockSkew is how far in the future a token's signing time may be
	// before the token is refused as invalid, to tolerate clocks of
	// different machines that disagree a little.
	clockSkew = time.Minute

	nativeSignPrefix    = "v1."
	nativeEncryptPrefix = "v1e."
)

var b64 = base64.RawURLEncoding.Strict()

// Options configures a [Signer] or a [PhoenixSigner]. A nil *Options
// means the defaults.
type Options struct {
	// MaxAge is how long a token stays valid after it was made; zero means 24
	// hours. A negative MaxAge makes every token expired, so that only
	// Signer.VerifyMaxAge and Signer.DecryptMaxAge with a positive max age
	// accept tokens.
	//
	// A PhoenixSigner writes MaxAge into the tokens it signs, as Phoenix's
	// :max_age option of Phoenix.Token.sign does (a negative MaxAge is
	// written as 0, which Phoenix treats as expired), and its Verify honors
	// the max age written in each token.
	MaxAge time.Duration
	// Now returns the current time; nil means time.Now. Tests set it to a
	// fixed clock. It must be safe for concurrent use.
	Now func() time.Time
}

func (o *Options) resolve() (maxAge time.Duration, now func() time.Time) {
	maxAge, now = defaultMaxAge, time.Now
	if o != nil {
		if o.MaxAge != 0 {
			maxAge = o.MaxAge
		}
		if o.Now != nil {
			now = o.Now
		}
	}
	return maxAge, now
}

// Signer makes tamper-proof tokens for Go services, as Phoenix.Token does
// for Elixir: a server hands a token to a client (for example to pass as a
// socket connect parameter) and later checks that it made it, that it was not
// altered and that it is not too old.
//
// Its tokens carry JSON and are meant for Go services; to exchange tokens
// with an Elixir application, use [PhoenixSigner] instead.
//
// Signed tokens (Sign, Verify) are readable by anyone who holds one: do not
// put secrets in them, or use Encrypt and Decrypt. A token made with one salt
// does not verify with another, so use a different salt for each purpose
// ("user socket", "password reset", ...).
//
// Format: Sign returns "v1." + b64(payload) + "." + b64(mac), where b64 is
// URL-safe base64 without padding (RFC 4648 §5; decoding is strict), payload
// is the signing time as 8 bytes of big-endian Unix milliseconds followed by
// the JSON encoding of the data, and mac is HMAC-SHA256 over everything
// before the second dot, keyed with HKDF-SHA256(secret, salt = none, info =
// "phx token v1 sign" + "\x00" + salt). Encrypt returns "v1e." +
// b64(nonce || ciphertext || tag), the AES-256-GCM encryption of the same
// payload under a random 96-bit nonce, with additional data "v1e." and the
// key HKDF-SHA256(secret, info = "phx token v1 encrypt" + "\x00" + salt).
// Other versions may be added under other prefixes.
//
// A Signer is safe for concurrent use.
type Signer struct {
	signKey []byte
	aead    cipher.AEAD
	maxAge  time.Duration
	now     func() time.Time
}

// NewSigner returns a Signer whose keys are derived from secret and salt.
// The secret must be at least MinSecretLen random bytes (else the error
// wraps [ErrSecretTooShort]) and is not retained. The salt is not secret: it
// separates the tokens of different purposes; an empty salt is allowed but
// then every purpose sharing the secret shares its tokens. opts may be nil.
func NewSigner(secret []byte, salt string, opts *Options) (*Signer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrSecretTooShort, len(secret), MinSecretLen)
	}
	signKey, err := hkdf.Key(sha256.New, secret, nil, "phx token v1 sign\x00"+salt, 32)
	if err != nil {
		return nil, fmt.Errorf("token: derive key: %w", err)
	}
	encKey, err := hkdf.Key(sha256.New, secret, nil, "phx token v1 encrypt\x00"+salt, 32)
	if err != nil {
		return nil, fmt.Errorf("token: derive key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, err
	}
	s := &Signer{signKey: signKey, aead: aead}
	s.maxAge, s.now = opts.resolve()
	return s, nil
}

// Sign returns a token holding the JSON encoding of data and the current
// time, authenticated with HMAC-SHA256. It fails if data cannot be encoded
// as JSON or the token would be longer than [MaxLen].
func (s *Signer) Sign(data any) (string, error) {
	payload, err := s.payload(data)
	if err != nil {
		return "", err
	}
	tok := nativeSignPrefix + b64.EncodeToString(payload)
	return checkSignedLen(tok + "." + b64.EncodeToString(s.mac(tok)))
}

// Verify checks a token made by Sign with the same secret and salt, and
// decodes its data into v with encoding/json (a nil v skips decoding). It
// returns an error wrapping [ErrMissing] for an empty token, [ErrExpired] if
// the token is older than the Signer's max age, and [ErrInvalid] for
// anything else wrong with the token, including a signing time more than a
// minute in the future; v is then left untouched.
// An error from encoding/json means the token is authentic but its data does
// not fit v.
func (s *Signer) Verify(token string, v any) error {
	return s.VerifyMaxAge(token, s.maxAge, v)
}

// VerifyMaxAge is Verify with maxAge in place of the Signer's max age. A
// token is expired when more than maxAge has passed since it was signed
// (compared in whole milliseconds); a maxAge of zero or less makes every
// token expired.
func (s *Signer) VerifyMaxAge(token string, maxAge time.Duration, v any) error {
	if err := checkSyntax(token); err != nil {
		return err
	}
	rest, ok := strings.CutPrefix(token, nativeSignPrefix)
	if !ok {
		return ErrInvalid
	}
	enc, sigEnc, _ := strings.Cut(rest, ".")
	sig, err := b64.DecodeString(sigEnc)
	if err != nil || !hmac.Equal(sig, s.mac(token[:len(nativeSignPrefix)+len(enc)])) {
		return ErrInvalid
	}
	payload, err := b64.DecodeString(enc)
	if err != nil {
		return ErrInvalid
	}
	return s.open(payload, maxAge, v)
}

// Encrypt returns a token holding the JSON encoding of data and the current
// time, encrypted and authenticated with AES-256-GCM, so that holders of the
// token cannot read the data. It fails if data cannot be encoded as JSON or
// the token would be longer than [MaxLen]. A Signer must not encrypt more
// than 2³² tokens (random nonces).
func (s *Signer) Encrypt(data any) (string, error) {
	payload, err := s.payload(data)
	if err != nil {
		return "", err
	}
	sealed := s.aead.Seal(nil, nil, payload, []byte(nativeEncryptPrefix))
	return checkSignedLen(nativeEncryptPrefix + b64.EncodeToString(sealed))
}

// Decrypt checks and decrypts a token made by Encrypt with the same secret
// and salt, and decodes its data into v; its errors are those of Verify.
func (s *Signer) Decrypt(token string, v any) error {
	return s.DecryptMaxAge(token, s.maxAge, v)
}

// DecryptMaxAge is Decrypt with maxAge in place of the Signer's max age,
// with the meaning it has for VerifyMaxAge.
func (s *Signer) DecryptMaxAge(token string, maxAge time.Duration, v any) error {
	if err := checkSyntax(token); err != nil {
		return err
	}
	enc, ok := strings.CutPrefix(token, nativeEncryptPrefix)
	if !ok {
		return ErrInvalid
	}
	sealed, err := b64.DecodeString(enc)
	if err != nil {
		return ErrInvalid
	}
	payload, err := s.aead.Open(nil, nil, sealed, []byte(nativeEncryptPrefix))
	if err != nil {
		return ErrInvalid
	}
	return s.open(payload, maxAge, v)
}

func (s *Signer) mac(signed string) []byte {
	m := hmac.New(sha256.New, s.signKey)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

func (s *Signer) payload(data any) ([]byte, error) {
	js, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("token: data: %w", err)
	}
	p := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(js)), uint64(s.now().UnixMilli()))
	return append(p, js...), nil
}

// open checks the signing time of an authentic payload and decodes its data.
func (s *Signer) open(payload []byte, maxAge time.Duration, v any) error {
	if len(payload) < 8 {
		return ErrInvalid
	}
	signed := int64(binary.BigEndian.Uint64(payload))
	if err := checkAge(signed, s.now().UnixMilli(), durationMs(maxAge)); err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(payload[8:], v)
}

// checkSyntax refuses empty and oversize tokens, and tokens with bytes
// other than those of URL-safe base64 and dots: encoding/base64 skips CR and
// LF, which would make tokens malleable.
func checkSyntax(token string) error {
	switch {
	case token == "":
		return ErrMissing
	case len(token) > MaxLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalid, MaxLen)
	}
	for i := range len(token) {
		switch c := token[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return fmt.Errorf("%w: unexpected byte %#02x", ErrInvalid, c)
		}
	}
	return nil
}

func checkSignedLen(token string) (string, error) {
	if len(token) > MaxLen {
		return "", fmt.Errorf("token: %d bytes, longer than MaxLen (%d)", len(token), MaxLen)
	}
	return token, nil
}

// durationMs converts a max age to milliseconds for checkAge: -1
// (always expired) if d <= 0.
func durationMs(d time.Duration) int64 {
	if d <= 0 {
		return -1
	}
	return d.Milliseconds()
}

// checkAge checks a token signed at signedMs (Unix milliseconds) at
// nowMs: more than clockSkew in the future is invalid; expired when
// signedMs + maxAgeMs < nowMs (Phoenix's rule), always if maxAgeMs < 0;
// math.MaxInt64 never expires.
func checkAge(signedMs, nowMs, maxAgeMs int64) error {
	if signedMs > addMs(nowMs, clockSkew.Milliseconds()) {
		return fmt.Errorf("%w: signed in the future", ErrInvalid)
	}
	if maxAgeMs == math.MaxInt64 {
		return nil
	}
	if maxAgeMs < 0 || addMs(signedMs, maxAgeMs) < nowMs {
		return ErrExpired
	}
	return nil
}

// addMs returns a + b for b >= 0, saturating at math.MaxInt64.
func addMs(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
