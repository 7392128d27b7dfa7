package token_test

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/phxgo/phx/token"
)

var (
	tokSecret = []byte("0123456789abcdef0123456789abcdef")
	tokEpoch  = time.UnixMilli(1700000000000)
)

func tokClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// tokSigner returns a Signer for tokSecret and salt whose clock is at.
func tokSigner(t testing.TB, salt string, at time.Time, maxAge time.Duration) *token.Signer {
	t.Helper()
	s, err := token.NewSigner(tokSecret, salt, &token.Options{MaxAge: maxAge, Now: tokClock(at)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type tokClaims struct {
	UserID int      `json:"user_id"`
	Roles  []string `json:"roles"`
}

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	s := tokSigner(t, "user socket", tokEpoch, 0)
	tests := []struct {
		name string
		data any
		into func() any // returns a pointer to decode into
	}{
		{"struct", tokClaims{7, []string{"admin"}}, func() any { return new(tokClaims) }},
		{"int", 42, func() any { return new(int) }},
		{"string", "user:42", func() any { return new(string) }},
		{"map", map[string]any{"a": 1.5, "b": []any{"x", nil}}, func() any { return new(map[string]any) }},
		{"nil", nil, func() any { return new(any) }},
		{"empty string", "", func() any { return new(string) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, mode := range []string{"sign", "encrypt"} {
				var tok string
				var err error
				got := tc.into()
				if mode == "sign" {
					if tok, err = s.Sign(tc.data); err == nil {
						err = s.Verify(tok, got)
					}
				} else {
					if tok, err = s.Encrypt(tc.data); err == nil {
						err = s.Decrypt(tok, got)
					}
				}
				if err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if len(tok) > token.MaxLen || strings.ContainsAny(tok, "+/=?&# ") {
					t.Errorf("%s: token %q is not URL-safe", mode, tok)
				}
				want := reflect.New(reflect.TypeOf(got).Elem())
				js, _ := json.Marshal(tc.data)
				json.Unmarshal(js, want.Interface())
				if !reflect.DeepEqual(got, want.Interface()) {
					t.Errorf("%s: got %#v, want %#v", mode, got, want.Interface())
				}
			}
		})
	}
}

func TestTokenVectors(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/native_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Secret     string `json:"secret"`
		Salt       string `json:"salt"`
		SignedAtMs int64  `json:"signed_at_ms"`
		Vectors    []struct {
			Data  json.RawMessage `json:"data"`
			Token string          `json:"token"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	s, err := token.NewSigner([]byte(file.Secret), file.Salt, &token.Options{Now: tokClock(time.UnixMilli(file.SignedAtMs))})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range file.Vectors {
		tok, err := s.Sign(v.Data)
		if err != nil || tok != v.Token {
			t.Errorf("Sign(%s) = %q, %v; want %q", v.Data, tok, err, v.Token)
		}
		var got json.RawMessage
		if err := s.Verify(v.Token, &got); err != nil || string(got) != string(v.Data) {
			t.Errorf("Verify(%q) = %s, %v; want %s", v.Token, got, err, v.Data)
		}
	}
}

func TestNewSignerSecretTooShort(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 31} {
		if _, err := token.NewSigner(make([]byte, n), "salt", nil); !errors.Is(err, token.ErrSecretTooShort) {
			t.Errorf("secret of %d bytes: err = %v, want ErrSecretTooShort", n, err)
		}
	}
	if _, err := token.NewSigner(make([]byte, 32), "", nil); err != nil {
		t.Errorf("32-byte secret with empty salt: %v", err)
	}
}

func TestTokenWrongKey(t *testing.T) {
	t.Parallel()
	s := tokSigner(t, "user socket", tokEpoch, 0)
	signed, _ := s.Sign(1)
	encrypted, _ := s.Encrypt(1)
	otherSecret, err := token.NewSigner([]byte("0123456789abcdef0123456789abcdeF"), "user socket",
		&token.Options{Now: tokClock(tokEpoch)})
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]*token.Signer{
		"other salt":   tokSigner(t, "user sockets", tokEpoch, 0),
		"empty salt":   tokSigner(t, "", tokEpoch, 0),
		"other secret": otherSecret,
	} {
		var v int
		if err := o.Verify(signed, &v); !errors.Is(err, token.ErrInvalid) {
			t.Errorf("%s: Verify err = %v, want ErrInvalid", name, err)
		}
		if err := o.Decrypt(encrypted, &v); !errors.Is(err, token.ErrInvalid) {
			t.Errorf("%s: Decrypt err = %v, want ErrInvalid", name, err)
		}
	}
	// A token of one kind is not accepted as the other.
	if err := s.Verify(encrypted, nil); !errors.Is(err, token.ErrInvalid) {
		t.Errorf("Verify(encrypted) = %v, want ErrInvalid", err)
	}
	if err := s.Decrypt(signed, nil); !errors.Is(err, token.ErrInvalid) {
		t.Errorf("Decrypt(signed) = %v, want ErrInvalid", err)
	}
}

// TestTokenTamper changes every byte of a token to every other value.
func TestTokenTamper(t *testing.T) {
	t.Parallel()
	s := tokSigner(t, "user socket", tokEpoch, 0)
	for _, mode := range []string{"sign", "encrypt"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			mint, check := s.Sign, s.Verify
			if mode == "encrypt" {
				mint, check = s.Encrypt, s.Decrypt
			}
			tok, err := mint(map[string]int{"user_id": 7})
			if err != nil {
				t.Fatal(err)
			}
			b := []byte(tok)
			for i := range b {
				orig := b[i]
				for c := range 256 {
					if byte(c) == orig {
						continue
					}
					b[i] = byte(c)
					var v any
					if err := check(string(b), &v); !errors.Is(err, token.ErrInvalid) {
						t.Fatalf("byte %d set to %q: err = %v, v = %v; want ErrInvalid", i, c, err, v)
					}
				}
				b[i] = orig
			}
			for i := range len(tok) { // truncated
				want := token.ErrInvalid
				if i == 0 {
					want = token.ErrMissing
				}
				if err := check(tok[:i], nil); !errors.Is(err, want) {
					t.Fatalf("token truncated to %d bytes: err = %v, want %v", i, err, want)
				}
			}
			// Insert bytes everywhere; encoding/base64 would skip CR and LF.
			for i := range len(tok) + 1 {
				for _, extra := range []string{"\n", "\r", "\r\n", "A", "=", ".", "\x00", " "} {
					if err := check(tok[:i]+extra+tok[i:], nil); !errors.Is(err, token.ErrInvalid) {
						t.Fatalf("%q inserted at %d: err = %v, want ErrInvalid", extra, i, err)
					}
				}
			}
		})
	}
}

func TestTokenAge(t *testing.T) {
	t.Parallel()
	s := tokSigner(t, "user socket", tokEpoch, 0)
	signed, _ := s.Sign("x")
	encrypted, _ := s.Encrypt("x")
	const day = 24 * time.Hour
	tests := []struct {
		name   string
		at     time.Duration // verification time, after signing
		maxAge time.Duration // Options.MaxAge of the verifier
		want   error
	}{
		{"fresh", 0, 0, nil},
		{"default max age", day, 0, nil},
		{"expired after default max age", day + time.Millisecond, 0, token.ErrExpired},
		{"long expired", 400 * day, 0, token.ErrExpired},
		{"max age", time.Hour, time.Hour, nil},
		{"after max age", time.Hour + time.Millisecond, time.Hour, token.ErrExpired},
		{"clock skew", -time.Minute, 0, nil},
		{"future", -time.Minute - time.Millisecond, 0, token.ErrInvalid},
		{"far future", -400 * day, 0, token.ErrInvalid},
		{"negative max age", 0, -time.Nanosecond, token.ErrExpired},
		{"negative max age before signing", -time.Second, -time.Hour, token.ErrExpired},
	}
	for _, tc := range tests {
		v := tokSigner(t, "user socket", tokEpoch.Add(tc.at), tc.maxAge)
		var got string
		if err := v.Verify(signed, &got); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("%s: Verify err = %v, want %v", tc.name, err, tc.want)
		} else if err != nil && got != "" {
			t.Errorf("%s: Verify decoded %q despite the error", tc.name, got)
		}
		if err := v.Decrypt(encrypted, &got); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("%s: Decrypt err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestTokenMaxAgeOverride(t *testing.T) {
	t.Parallel()
	s := tokSigner(t, "user socket", tokEpoch, 0)
	signed, _ := s.Sign("x")
	encrypted, _ := s.Encrypt("x")
	twoHours := tokSigner(t, "user socket", tokEpoch.Add(2*time.Hour), -1) // expired without override
	tests := []struct {
		maxAge time.Duration
		want   error
	}{
		{time.Hour, token.ErrExpired},
		{2*time.Hour - time.Millisecond, token.ErrExpired},
		{2 * time.Hour, nil},
		{3 * time.Hour, nil},
		{1<<63 - 1, nil},
		{0, token.ErrExpired},
		{-time.Hour, token.ErrExpired},
	}
	for _, tc := range tests {
		if err := twoHours.VerifyMaxAge(signed, tc.maxAge, nil); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("VerifyMaxAge(%v) = %v, want %v", tc.maxAge, err, tc.want)
		}
		if err := twoHours.DecryptMaxAge(encrypted, tc.maxAge, nil); !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("DecryptMaxAge(%v) = %v, want %v", tc.maxAge, err, tc.want)
		}
	}
	if err := twoHours.Verify(signed, nil); !errors.Is(err, token.ErrExpired) {
		t.Errorf("Verify with negative MaxAge = %v, want ErrExpired", err)
	}
}

func TestTokenMalformed(t *testing.T) {
	t.Parallel()
	s := tokSigner(t, "user socket", tokEpoch, 0)
	tok, _ := s.Sign("x")
	tests := map[string]string{
		"oversize":         strings.Repeat("A", token.MaxLen+1),
		"oversize valid":   tok + strings.Repeat("A", token.MaxLen),
		"garbage":          "garbage",
		"dots":             "...",
		"prefix only":      "v1.",
		"encrypted prefix": "v1e.",
		"no mac":           "v1.AAAAAAAAAAAAAAAA",
		"empty mac":        "v1.AAAAAAAAAAAAAAAA.",
		"padded":           tok + "=",
		"other version":    "v2" + tok[2:],
		"phoenix token":    "SFMyNTY.g2gDYSpuBgAAaOXPiwFiAAFRgA.m7SDXSf3rVdHjrnrb1PRh48trPi839fZKU80GMSVsuo",
		"std base64":       strings.NewReplacer("-", "+", "_", "/").Replace(tok),
		"unicode":          "v1.ü.ü",
		"nul":              "\x00",
		"forged short":     "v1.AAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"short encrypted":  "v1e.AAAA",
	}
	for name, tok := range tests {
		var v any
		for _, check := range []func(string, any) error{s.Verify, s.Decrypt} {
			if err := check(tok, &v); !errors.Is(err, token.ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			}
		}
	}
	for _, check := range []func(string, any) error{s.Verify, s.Decrypt} {
		if err := check("", nil); !errors.Is(err, token.ErrMissing) {
			t.Errorf("empty token: err = %v, want ErrMissing", err)
		}
	}
}

func TestTokenSignErrors(t *testing.T) {
	t.Parallel()
	s := tokSigner(t, "user socket", tokEpoch, 0)
	if _, err := s.Sign(make(chan int)); err == nil {
		t.Error("Sign(chan) succeeded")
	}
	if _, err := s.Encrypt(func() {}); err == nil {
		t.Error("Encrypt(func) succeeded")
	}
	big := strings.Repeat("x", token.MaxLen)
	if tok, err := s.Sign(big); err == nil {
		t.Errorf("Sign made a token of %d bytes", len(tok))
	}
	if tok, err := s.Encrypt(big); err == nil {
		t.Errorf("Encrypt made a token of %d bytes", len(tok))
	}
	// The largest data that fits still verifies.
	n := 6000
	for ; ; n++ {
		tok, err := s.Sign(strings.Repeat("x", n+1))
		if err != nil {
			break
		}
		if err := s.Verify(tok, nil); err != nil {
			t.Fatalf("token of %d bytes: %v", len(tok), err)
		}
	}
	if n < 6050 {
		t.Errorf("Sign refused %d bytes of data", n+1)
	}
}

func TestTokenWrongType(t *testing.T) {
	t.Parallel()
	s := tokSigner(t, "user socket", tokEpoch, 0)
	tok, _ := s.Sign("not a number")
	var n int
	err := s.Verify(tok, &n)
	if err == nil || errors.Is(err, token.ErrInvalid) || errors.Is(err, token.ErrExpired) {
		t.Errorf("Verify into the wrong type: err = %v, want a JSON error", err)
	}
	if err := s.Verify(tok, nil); err != nil {
		t.Errorf("Verify with nil v: %v", err)
	}
}

func TestTokenEncryptRandomized(t *testing.T) {
	t.Parallel()
	s := tokSigner(t, "user socket", tokEpoch, 0)
	a, _ := s.Encrypt("secret")
	b, _ := s.Encrypt("secret")
	if a == b {
		t.Error("two encryptions of the same data are equal")
	}
	if strings.Contains(a, "secret") {
		t.Error("encrypted token shows its data")
	}
}

func TestTokenConcurrent(t *testing.T) {
	t.Parallel()
	s, err := token.NewSigner(tokSecret, "user socket", nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				tok, err := s.Sign(i*100 + j)
				if err != nil {
					t.Error(err)
					return
				}
				var got int
				if err := s.Verify(tok, &got); err != nil || got != i*100+j {
					t.Errorf("Verify = %d, %v", got, err)
				}
				tok, _ = s.Encrypt(j)
				if err := s.Decrypt(tok, &got); err != nil || got != j {
					t.Errorf("Decrypt = %d, %v", got, err)
				}
			}
		})
	}
	wg.Wait()
}

func FuzzVerifyToken(f *testing.F) {
	s := tokSigner(f, "user socket", tokEpoch, 0)
	// Fuzzing workers run this setup again, so the valid tokens must be the
	// same in every process: signed tokens are (fixed clock); encrypted ones
	// are fixed strings made by Encrypt with tokSigner's key.
	valid := map[string]bool{
		"v1e.lXjQa-iw2qwX6H3hXVpusfc_Jmq24Gp80R3IgAa96KYcxu27tQQ":                true, // 42
		"v1e.LiIjgynNMUvgMVxM2rchVrRZuQ5reAyQS2a-55Vva4ZEXD3Zh1hL7Tu0R-jpXsivBg": true, // {"user_id":7}
	}
	for tok := range valid {
		if err := s.Decrypt(tok, nil); err != nil {
			f.Fatalf("Decrypt(%q): %v", tok, err)
		}
		f.Add(tok)
	}
	for _, data := range []any{42, "user:42", map[string]any{"user_id": 7}, nil, []int{1, 2}} {
		tok, err := s.Sign(data)
		if err != nil {
			f.Fatal(err)
		}
		valid[tok] = true
		f.Add(tok)
	}
	// Found by this fuzzer: base64 decoding skips CR and LF.
	f.Add("v1.AAABi8_laAA0Mg.KLpl_QLcNwyqCYzwcRQLJvVUFcyaod\nMW_2_JuLptYKs")
	for _, tok := range []string{"", "v1.", "v1e.", "v1..", "v1.AAAAAAAAAAA.AAAA", "garbage"} {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		var v any
		if err := s.Verify(tok, &v); err == nil && !valid[tok] {
			t.Fatalf("Verify accepted %q (data %v)", tok, v)
		}
		if err := s.Decrypt(tok, &v); err == nil && !valid[tok] {
			t.Fatalf("Decrypt accepted %q (data %v)", tok, v)
		}
		if err := s.VerifyMaxAge(tok, time.Duration(len(tok))*time.Hour, nil); err == nil && !valid[tok] {
			t.Fatalf("VerifyMaxAge accepted %q", tok)
		}
	})
}
