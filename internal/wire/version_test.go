package wire

import "testing"

func TestRequirement(t *testing.T) {
	t.Parallel()
	cases := []struct {
		req, vsn string
		want     bool
	}{
		{"~> 2.0", "2.0.0", true},
		{"~> 2.0", "2.5.1", true},
		{"~> 2.0", "3.0.0", false},
		{"~> 2.0", "3.0.0-rc.1", false},
		{"~> 2.0", "1.9.9", false},
		{"~> 2.1.0", "2.1.7", true},
		{"~> 2.1.0", "2.2.0", false},
		{"~> 2.1.0", "2.1.0-rc.1", false},
		{"~> 9.9.9", "9.10.0", false},
		{"~> 9.9.9", "9.9.10", true},
		{"~>2.0.0", "2.0.3", true},
	}
	for _, tc := range cases {
		r, err := ParseRequirement(tc.req)
		if err != nil {
			t.Fatalf("ParseRequirement(%q): %v", tc.req, err)
		}
		v, err := ParseVersion(tc.vsn)
		if err != nil {
			t.Fatalf("ParseVersion(%q): %v", tc.vsn, err)
		}
		if got := r.Match(v); got != tc.want {
			t.Errorf("%q.Match(%q) = %v; want %v", tc.req, tc.vsn, got, tc.want)
		}
	}
	for _, bad := range []string{"", "2.0.0", "~>", "~> 2", "~> 2.0.0.0", "~> 02.0", "~> a.b", ">= 2.0.0", "~> 2.0.0-rc.1"} {
		if _, err := ParseRequirement(bad); err == nil {
			t.Errorf("ParseRequirement(%q) succeeded", bad)
		}
	}
}

func TestVsnFromQuery(t *testing.T) {
	t.Parallel()
	cases := []struct {
		q    map[string][]string
		want string // "" means refused
	}{
		{nil, "1.0.0"},
		{map[string][]string{"vsn": {"2.0.0"}}, "2.0.0"},
		{map[string][]string{"vsn": {"1.0.0", "2.0.0"}}, "2.0.0"},
		{map[string][]string{"vsn": {""}}, ""},
		{map[string][]string{"vsn": {}}, ""},
		{map[string][]string{"vsn[]": {"2.0.0"}}, ""},
	}
	for _, tc := range cases {
		got, err := VsnFromQuery(tc.q)
		if tc.want == "" {
			if err == nil {
				t.Errorf("VsnFromQuery(%v) = %q, want an error", tc.q, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("VsnFromQuery(%v) = %q, %v; want %q", tc.q, got, err, tc.want)
		}
	}
}
