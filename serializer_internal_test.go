package phx

import (
	"errors"
	"testing"
)

// The vsn values a client may send and the built-in serializer each one
// selects, as Phoenix's default serializer list maps them.
func TestNegotiate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		vsn  string
		want Serializer // nil: refused; vsn "" means no vsn parameter
	}{
		{"", v1JSON},
		{"1.0.0", v1JSON},
		{"1.0.3", v1JSON},
		{"1.0.12", v1JSON},
		{"2.0.0", v2JSON},
		{"2.0.3", v2JSON},
		{"2.0.0+build.1", v2JSON},
		{"2.0.1-rc.1", v2JSON},
		{"2.0.99999999999999999999999", v2JSON},
		{"2.0.0-rc.1", nil}, // pre-release of 2.0.0 is < 2.0.0
		{"1.0.0-beta", nil},
		{"2.1.0", nil},
		{"3.0.0", nil},
		{"1.1.0", nil},
		{"0.0.1", nil},
		{"123.1.1", nil},
		{"abc", nil},
		{"2", nil},
		{"2.0", nil},
		{"v2.0.0", nil},
		{"2.0.0.0", nil},
		{"02.0.0", nil},
		{"2.00.0", nil},
		{"2.0.00", nil},
		{"2.0.0-", nil},
		{"2.0.0+", nil},
		{"2.0.1-01", nil},
		{"2.0.1-a..b", nil},
		{"2.0.1-a_b", nil},
		{" 2.0.0", nil},
		{"2.0.0 ", nil},
		{"2.0.x", nil},
		{"-2.0.0", nil},
	}
	defaults, err := compileSerializers(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		query := map[string][]string{"vsn": {tc.vsn}}
		if tc.vsn == "" {
			query = nil
		}
		got, err := negotiate(defaults, query)
		if tc.want == nil {
			if err == nil || !errors.Is(err, ErrUnsupportedVsn) || got.ser != nil {
				t.Errorf("negotiate(vsn=%q) = (%v, %v), want ErrUnsupportedVsn", tc.vsn, got.ser, err)
			}
			continue
		}
		if err != nil || got.ser != tc.want {
			t.Errorf("negotiate(vsn=%q) = (%v, %v), want %v", tc.vsn, got.ser, err, tc.want)
		}
	}
}
