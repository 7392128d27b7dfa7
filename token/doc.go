// Package token makes and checks short, URL-safe strings that prove the
// server issued them: a server hands one to a client (typically after a
// login, to be sent back as a socket connect parameter such as
// params: {token}) and, when the client presents it again, learns who the
// client is without a session store. Every token records when it was made
// and is refused once it is older than its max age.
//
// # Two formats
//
// A [Signer] writes this package's own format. The data is encoded as JSON
// and decoded with encoding/json into any Go value, keys are derived from the
// secret with HKDF-SHA256, and tokens are either signed with HMAC-SHA256
// (Sign, Verify: the data is readable by whoever holds the token) or
// encrypted with AES-256-GCM (Encrypt, Decrypt: the data is hidden too).
// Tokens start with a version prefix ("v1.", "v1e.") so that the format can
// evolve.
//
// A [PhoenixSigner] writes the format of Elixir's Phoenix.Token: the data is
// an Erlang term (with [Atom] and [Tuple] for the Elixir types Go lacks), the
// key is derived from the Phoenix application's secret_key_base with PBKDF2
// as Plug.Crypto does, and the tokens are identical to those Elixir makes
// with the same secret, salt, data and time. It only signs; it does not
// implement Phoenix.Token.encrypt.
//
// # Which to use
//
// When only Go programs make and check the tokens, use a Signer: its data
// is plain JSON that maps onto Go structs, and it can also encrypt.
// Use a PhoenixSigner when tokens cross between Go and Elixir: a Go service
// that accepts the tokens a Phoenix application issues with
// Phoenix.Token.sign, or issues tokens that the Phoenix application checks
// with Phoenix.Token.verify. Both need the same secret on every side.
//
// Whichever you choose, pick a distinct salt for each purpose ("user
// socket", "email confirmation", ...): a token made with one salt is invalid
// under another, so a token issued for one purpose cannot be replayed for
// another.
//
// Both signers are safe for concurrent use. A refused token makes Verify
// return an error wrapping [ErrMissing], [ErrExpired] or [ErrInvalid].
//
// Package phx uses a Signer for its long-poll session tokens; applications
// typically verify their own tokens in phx.Options.Connect.
package token
