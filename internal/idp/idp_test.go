package idp

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestScopes(t *testing.T) {
	if c := New(Config{}, nil); !slices.Equal(c.scopes, DefaultScopes) {
		t.Errorf("default scopes %v", c.scopes)
	}
	if c := New(Config{Scopes: []string{"email", "groups"}}, nil); !slices.Equal(c.scopes, []string{"openid", "email", "groups"}) {
		t.Errorf("openid is always requested: %v", c.scopes)
	}
}

func TestGroupsClaim(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want []string
		bad  bool
	}{
		{raw: `null`},
		{raw: `[]`},
		{raw: `["a"," b ","a",""]`, want: []string{"a", "b"}},
		{raw: `"solo"`, want: []string{"solo"}},
		{raw: `{"a":1}`, bad: true},
		{raw: `[1,2]`, bad: true},
	} {
		id, err := fromClaims(claims{Subject: "s", Groups: json.RawMessage(tc.raw)})
		if (err != nil) != tc.bad {
			t.Errorf("%s: error %v", tc.raw, err)
			continue
		}
		if err == nil && !slices.Equal(id.Groups, tc.want) {
			t.Errorf("%s: groups %v, want %v", tc.raw, id.Groups, tc.want)
		}
		if err != nil && KindOf(err) != Invalid {
			t.Errorf("%s: kind %v", tc.raw, KindOf(err))
		}
	}
}
