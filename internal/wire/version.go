package wire

import (
	"cmp"
	"fmt"
	"strings"
)

// Version is a parsed semantic version, as a [Requirement] matches it.
type Version struct {
	core [3]string // MAJOR, MINOR, PATCH without leading zeros
	pre  bool      // has a pre-release part
}

// ParseVersion parses v as Elixir's Version.parse does: MAJOR.MINOR.PATCH
// without leading zeros, an optional -pre-release and +build (ignored). An
// unparsable v gives an error wrapping [ErrUnsupportedVsn].
func ParseVersion(v string) (Version, error) {
	major, minor, patch, pre, ok := parseVersion(v)
	if !ok {
		return Version{}, fmt.Errorf("%w: %q is not a semantic version", ErrUnsupportedVsn, v)
	}
	return Version{core: [3]string{major, minor, patch}, pre: pre != ""}, nil
}

// parseVersion splits a semantic version as Elixir's Version.parse does.
// Numbers are returned as text without leading zeros, so they compare as
// numbers when equal length; pre is the pre-release part or "".
func parseVersion(v string) (major, minor, patch, pre string, ok bool) {
	core, build, hasBuild := strings.Cut(v, "+")
	if hasBuild && !validIdentifiers(build, false) {
		return "", "", "", "", false
	}
	core, pre, hasPre := strings.Cut(core, "-")
	if hasPre && !validIdentifiers(pre, true) {
		return "", "", "", "", false
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return "", "", "", "", false
	}
	for _, p := range parts {
		if !isNumericIdentifier(p) {
			return "", "", "", "", false
		}
	}
	return parts[0], parts[1], parts[2], pre, true
}

// validIdentifiers checks dot-separated non-empty [0-9A-Za-z-] identifiers;
// for a pre-release, purely numeric identifiers must not have leading zeros.
func validIdentifiers(s string, pre bool) bool {
	for id := range strings.SplitSeq(s, ".") {
		if id == "" {
			return false
		}
		numeric := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			switch {
			case isDigit(c):
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				numeric = false
			default:
				return false
			}
		}
		if pre && numeric && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

// isNumericIdentifier reports whether s is a non-empty decimal number without
// a leading zero.
func isNumericIdentifier(s string) bool {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// A Requirement is an Elixir-style version requirement, as Phoenix's
// `serializer:` option takes them: "~> 2.0.0" matches 2.0.0 up to, not
// including, 2.1.0; "~> 2.0" matches 2.0.0 up to 3.0.0. Pre-releases of the
// lower bound and of the upper bound do not match; pre-releases in between
// do (2.0.1-rc.1 matches ~> 2.0.0).
type Requirement struct {
	text         string
	lower, upper [3]string // numbers as text without leading zeros
}

// ParseRequirement parses "~> MAJOR.MINOR.PATCH" or "~> MAJOR.MINOR".
func ParseRequirement(s string) (Requirement, error) {
	v, ok := strings.CutPrefix(s, "~>")
	v = strings.TrimSpace(v)
	parts := strings.Split(v, ".")
	if !ok || len(parts) < 2 || len(parts) > 3 {
		return Requirement{}, fmt.Errorf("version requirement %q: want \"~> MAJOR.MINOR.PATCH\" or \"~> MAJOR.MINOR\"", s)
	}
	for _, p := range parts {
		if !isNumericIdentifier(p) {
			return Requirement{}, fmt.Errorf("version requirement %q: %q is not a number", s, p)
		}
	}
	r := Requirement{text: s}
	if len(parts) == 3 {
		r.lower = [3]string{parts[0], parts[1], parts[2]}
		r.upper = [3]string{parts[0], increment(parts[1]), "0"}
	} else {
		r.lower = [3]string{parts[0], parts[1], "0"}
		r.upper = [3]string{increment(parts[0]), "0", "0"}
	}
	return r, nil
}

// String returns the requirement as it was written.
func (r Requirement) String() string { return r.text }

// Match reports whether v satisfies r.
func (r Requirement) Match(v Version) bool {
	lo := compareVersion(v.core, r.lower)
	if lo < 0 || (lo == 0 && v.pre) {
		return false
	}
	return compareVersion(v.core, r.upper) < 0
}

// compareVersion compares two MAJOR.MINOR.PATCH triples numerically.
func compareVersion(a, b [3]string) int {
	for i := range a {
		if c := compareNumber(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// compareNumber compares two decimal numbers without leading zeros.
func compareNumber(a, b string) int {
	if len(a) != len(b) {
		return cmp.Compare(len(a), len(b))
	}
	return strings.Compare(a, b)
}

// increment adds one to a decimal number without leading zeros.
func increment(n string) string {
	b := []byte(n)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < '9' {
			b[i]++
			return string(b)
		}
		b[i] = '0'
	}
	return "1" + string(b)
}

// VsnFromQuery returns the protocol version a client asks for in its query
// parameters, as Phoenix reads it: the last vsn wins; a missing vsn means
// "1.0.0"; an empty or non-string vsn (vsn=, vsn[]=...) gives an error
// wrapping [ErrUnsupportedVsn].
func VsnFromQuery(q map[string][]string) (string, error) {
	for k := range q {
		if strings.HasPrefix(k, "vsn[") {
			return "", fmt.Errorf("%w: vsn must be a single string", ErrUnsupportedVsn)
		}
	}
	vs, present := q["vsn"]
	if !present {
		return "1.0.0", nil
	}
	if len(vs) == 0 || vs[len(vs)-1] == "" {
		return "", fmt.Errorf("%w: empty vsn", ErrUnsupportedVsn)
	}
	return vs[len(vs)-1], nil
}
