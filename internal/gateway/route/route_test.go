package route

import "testing"

func TestTable(t *testing.T) {
	exact := &Listener[string]{Name: "exact", Hosts: []string{"shop.example.test"}, Priority: 300}
	wideLow := &Listener[string]{Name: "wide", Hosts: []string{"*.test"}, Priority: 200}
	narrow := &Listener[string]{Name: "narrow", Hosts: []string{"*.example.test"}, Priority: 100}
	basic := &Listener[string]{Name: "basic", Priority: 50}
	tab := NewTable([]*Listener[string]{exact, wideLow, narrow, basic})

	tests := []struct{ host, want string }{
		{"shop.example.test", "exact"},     // exact beats any wildcard
		{"SHOP.example.test:443", "exact"}, // case and port ignored
		{"www.example.test", "narrow"},     // both wildcards match: priority 100 wins
		{"other.test", "wide"},             // only the wide one matches
		{"elsewhere.org", "basic"},         // the basic listener takes the rest
	}
	for _, tc := range tests {
		if got := tab.ForHost(tc.host); got == nil || got.Name != tc.want {
			t.Errorf("ForHost(%q) = %v, want %s", tc.host, got, tc.want)
		}
	}
	if got := tab.ForServerName(""); got != exact {
		t.Errorf("no SNI: got %v, want the first listener", got)
	}
}

func TestFallbackRequiresSNI(t *testing.T) {
	a := &Listener[int]{Name: "a", Hosts: []string{"a.test"}, RequireSNI: true}
	b := &Listener[int]{Name: "b", Hosts: []string{"b.test"}}
	tab := NewTable([]*Listener[int]{a, b})
	if got := tab.ForServerName(""); got != nil {
		t.Errorf("no SNI with the first listener requiring it: got %v, want none", got.Name)
	}
	if got := tab.ForServerName("unknown.test"); got != nil {
		t.Errorf("unmatched SNI: got %v, want none", got.Name)
	}
	if got := tab.ForServerName("b.test"); got != b {
		t.Errorf("b.test: got %v", got)
	}
	if got := tab.ForHost("unknown.test"); got != nil {
		t.Errorf("ForHost without a basic listener: got %v, want nil", got.Name)
	}
}

func TestPathMap(t *testing.T) {
	var m PathMap[string]
	m.Default = "default"
	m.Add([]string{"/images/*", "/img"}, "images")
	m.Add([]string{"/api*"}, "api")
	m.Add([]string{"/images/special"}, "never") // shadowed by the first rule
	tests := []struct{ path, want string }{
		{"/images/a.png", "images"},
		{"/IMAGES/a.png", "images"},
		{"/img", "images"},
		{"/img/x", "default"},
		{"/api", "api"},
		{"/apiv2/x", "api"},
		{"/images/special", "images"},
		{"/", "default"},
	}
	for _, tc := range tests {
		if got := m.Match(tc.path); got != tc.want {
			t.Errorf("Match(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
