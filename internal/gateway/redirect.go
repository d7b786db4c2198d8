package gateway

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/keygate/keygate/internal/gateway/config"
	"github.com/keygate/keygate/internal/gateway/hostmatch"
)

var redirectStatus = map[string]int{
	config.RedirectPermanent: http.StatusMovedPermanently,
	config.RedirectFound:     http.StatusFound,
	config.RedirectSeeOther:  http.StatusSeeOther,
	config.RedirectTemporary: http.StatusTemporaryRedirect,
}

// redirect is a redirectConfiguration: to another listener (its scheme
// and port, the listener's host name or else the request's) or to a URL.
type redirect struct {
	status       int
	listener     *config.HTTPListener
	targetURL    string
	includePath  bool
	includeQuery bool
}

func (rd *redirect) serve(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, rd.location(r), rd.status)
}

// location builds the Location of the redirect for r.
func (rd *redirect) location(r *http.Request) string {
	var u *url.URL
	if rd.listener != nil {
		u = rd.toListener(r)
	} else {
		// Validation made sure the URL parses.
		u, _ = url.Parse(rd.targetURL)
		if rd.includePath {
			u.Path = strings.TrimSuffix(u.Path, "/") + r.URL.Path
			u.RawPath = ""
		}
	}
	if rd.includeQuery && r.URL.RawQuery != "" {
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += r.URL.RawQuery
	}
	return u.String()
}

func (rd *redirect) toListener(r *http.Request) *url.URL {
	l := rd.listener
	u := &url.URL{Scheme: "http", Path: "/"}
	defaultPort := "80"
	if l.Protocol == config.ProtocolHTTPS {
		u.Scheme, defaultPort = "https", "443"
	}
	host := hostmatch.Normalize(r.Host)
	if hosts := l.Hosts(); len(hosts) == 1 {
		host = hosts[0]
	}
	_, port, _ := net.SplitHostPort(l.Address())
	if port == defaultPort {
		u.Host = bracketIPv6(host)
	} else {
		u.Host = net.JoinHostPort(host, port)
	}
	if rd.includePath {
		u.Path = r.URL.Path
	}
	return u
}

func bracketIPv6(host string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]"
	}
	return host
}
