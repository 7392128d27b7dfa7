package token_test

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/phxgo/phx/token"
)

func ExampleSigner() {
	secret := []byte("an example secret of 32+ bytes!!") // use crypto/rand in real code
	signedAt := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := token.NewSigner(secret, "user socket", &token.Options{
		MaxAge: time.Hour,
		Now:    func() time.Time { return signedAt }, // omit in real code
	})
	if err != nil {
		panic(err)
	}
	tok, err := s.Sign(map[string]int{"user_id": 7})
	if err != nil {
		panic(err)
	}
	fmt.Println(tok)

	var claims struct {
		UserID int `json:"user_id"`
	}
	if err := s.Verify(tok, &claims); err != nil {
		panic(err)
	}
	fmt.Println("user", claims.UserID)

	// Two hours later, the token has expired.
	later, _ := token.NewSigner(secret, "user socket", &token.Options{
		MaxAge: time.Hour,
		Now:    func() time.Time { return signedAt.Add(2 * time.Hour) },
	})
	err = later.Verify(tok, &claims)
	fmt.Println(errors.Is(err, token.ErrExpired))
	// Output:
	// v1.AAABjMJR9AB7InVzZXJfaWQiOjd9.8NPmUk4zGqKQs4SMkjdVL_GPMDwSe1unvdIBTbSWkx8
	// user 7
	// true
}

func ExampleSigner_Encrypt() {
	secret := []byte("an example secret of 32+ bytes!!") // use crypto/rand in real code
	s, err := token.NewSigner(secret, "password reset", nil)
	if err != nil {
		panic(err)
	}
	// The token is different every time, and its holder cannot read the
	// e-mail address in it.
	tok, err := s.Encrypt("ann@example.com")
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.HasPrefix(tok, "v1e."), strings.Contains(tok, "ann"))

	var email string
	if err := s.Decrypt(tok, &email); err != nil {
		panic(err)
	}
	fmt.Println(email)

	// A token made for another purpose (salt) is refused.
	other, _ := token.NewSigner(secret, "user socket", nil)
	fmt.Println(errors.Is(other.Decrypt(tok, &email), token.ErrInvalid))
	// Output:
	// true false
	// ann@example.com
	// true
}

func ExampleSigner_VerifyMaxAge() {
	secret := []byte("an example secret of 32+ bytes!!") // use crypto/rand in real code
	signedAt := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s, _ := token.NewSigner(secret, "user socket", &token.Options{
		Now: func() time.Time { return signedAt },
	})
	tok, _ := s.Sign("ann")

	// Ten minutes later: still within the default 24 hours, but not within
	// the 5 minutes this check allows.
	later, _ := token.NewSigner(secret, "user socket", &token.Options{
		Now: func() time.Time { return signedAt.Add(10 * time.Minute) },
	})
	fmt.Println(later.Verify(tok, nil))
	fmt.Println(later.VerifyMaxAge(tok, 5*time.Minute, nil))
	// Output:
	// <nil>
	// token: expired
}

func ExamplePhoenixSigner() {
	// secret_key_base and salt as in the Phoenix application's
	// Phoenix.Token.sign(MyAppWeb.Endpoint, "user socket", %{user_id: 7}).
	secretKeyBase := []byte(strings.Repeat("0123456789abcdef", 4))
	signedAt := time.UnixMilli(1700000000000)
	s, err := token.NewPhoenixSigner(secretKeyBase, "user socket", &token.Options{
		Now: func() time.Time { return signedAt }, // omit in real code
	})
	if err != nil {
		panic(err)
	}
	tok, err := s.Sign(map[token.Atom]any{"user_id": 7})
	if err != nil {
		panic(err)
	}
	fmt.Println(tok)

	data, err := s.Verify(tok)
	if err != nil {
		panic(err)
	}
	fmt.Println(data.(map[any]any)[token.Atom("user_id")])
	// Output:
	// SFMyNTY.g2gDdAAAAAF3B3VzZXJfaWRhB24GAABo5c-LAWIAAVGA.knKdT9Cc0KSoc2x_xAFzHUJm748oRtZxQC9_I5P70mA
	// 7
}

// A token that Elixir made with
// Phoenix.Token.sign(MyAppWeb.Endpoint, "user socket", "user:42") verifies
// in Go when both sides share secret_key_base.
func ExamplePhoenixSigner_Verify() {
	secretKeyBase := []byte(strings.Repeat("0123456789abcdef", 4))
	s, err := token.NewPhoenixSigner(secretKeyBase, "user socket", &token.Options{
		Now: func() time.Time { return time.UnixMilli(1700000000000).Add(time.Hour) }, // omit in real code
	})
	if err != nil {
		panic(err)
	}
	data, err := s.Verify("SFMyNTY.g2gDbQAAAAd1c2VyOjQybgYAAGjlz4sBYgABUYA.xcsK2JlqIc7WTRqT6AvSCH2IoS8E3sjekP6dBrxe4Ek")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", data)
	// Output:
	// "user:42"
}

// Tuples and atoms carry the Elixir values that have no Go counterpart,
// here {:user, 7}.
func ExampleTuple() {
	secretKeyBase := []byte(strings.Repeat("0123456789abcdef", 4))
	s, _ := token.NewPhoenixSigner(secretKeyBase, "user socket", nil)
	tok, err := s.Sign(token.Tuple{token.Atom("user"), 7})
	if err != nil {
		panic(err)
	}
	data, err := s.Verify(tok)
	if err != nil {
		panic(err)
	}
	t := data.(token.Tuple)
	fmt.Println(t[0] == token.Atom("user"), t[1])
	// Output:
	// true 7
}
