package httpapi

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
)

// maxPage is Key Vault's largest (and default) page size.
const maxPage = 25

// listJSON is a page of a Key Vault list. An empty nextLink ends paging.
type listJSON[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"nextLink,omitempty"`
}

// page is a list request's paging parameters.
type page struct {
	max   int
	after string

	// includePending asks a certificate list for certificates whose
	// first version is still being made; other lists ignore it.
	includePending bool
}

// readPage reads maxresults (1 to 25, default 25), the $skiptoken cursor
// that a previous page's nextLink carried, and includePending.
func readPage(r *http.Request) (page, error) {
	q := r.URL.Query()
	pg := page{max: maxPage}
	if s := q.Get("maxresults"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPage {
			return page{}, badRequest("maxresults: must be an integer from 1 to %d", maxPage)
		}
		pg.max = n
	}
	if tok := q.Get("$skiptoken"); tok != "" {
		after, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return page{}, badRequest("$skiptoken: not a token this vault issued")
		}
		pg.after = string(after)
	}
	if s := q.Get("includePending"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return page{}, badRequest("includePending: must be true or false")
		}
		pg.includePending = b
	}
	return pg, nil
}

// nextLink is the URL of the page after cursor next, or empty. The SDK
// follows it exactly as given, so it carries api-version and maxresults.
func (pg page) nextLink(r *http.Request, c *call, next string) string {
	if next == "" {
		return ""
	}
	q := url.Values{}
	q.Set("api-version", c.apiVersion)
	q.Set("maxresults", strconv.Itoa(pg.max))
	q.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(next)))
	if pg.includePending {
		q.Set("includePending", "true")
	}
	return baseURL(r) + r.URL.Path + "?" + q.Encode()
}
