package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// pageRequest reads the paging query parameters of a list: limit (1 or more;
// above store.MaxPageSize it is clamped) and continue (the token of the
// previous page). paged is false when neither is given: the caller then
// serves the whole list, as Signadot's v2 API does.
func (s *Server) pageRequest(c *gin.Context) (p store.PageRequest, paged, ok bool) {
	q := c.Request.URL.Query()
	_, hasLimit := q[apitypes.QueryLimit]
	_, hasCont := q[apitypes.QueryContinue]
	if hasLimit {
		n, err := strconv.Atoi(q.Get(apitypes.QueryLimit))
		if err != nil || n < 1 {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, fmt.Sprintf("limit must be an integer >= 1 (at most %d items are returned per page)", store.MaxPageSize),
				apitypes.FieldError{Path: apitypes.QueryLimit, Message: "want an integer >= 1"})
			return p, false, false
		}
		p.Limit = min(n, store.MaxPageSize)
	}
	p.Continue = q.Get(apitypes.QueryContinue)
	return p, hasLimit || hasCont, true
}

// writeList answers a list request with a JSON array (the Signadot v2 shape).
// With limit or continue it is one page, and the response headers
// Sandboxmesh-Continue and Link (rel="next") carry the next page's token;
// without them it is the whole list, read from the store page after page and
// encoded as it is read, so memory stays flat in the length of the list.
func writeList[T, V any](s *Server, c *gin.Context, what string, fetch func(store.PageRequest) (store.Page[T], error), view func(T) V) {
	p, paged, ok := s.pageRequest(c)
	if !ok {
		return
	}
	if !paged {
		p.Limit = store.MaxPageSize
	}
	pg, err := fetch(p)
	if err != nil {
		s.failListErr(c, what, err)
		return
	}
	if paged && pg.Continue != "" {
		c.Header(apitypes.HeaderContinue, pg.Continue)
		c.Header("Link", fmt.Sprintf(`<%s>; rel="next"`, nextURL(c.Request.URL, pg.Continue)))
	}
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(http.StatusOK)
	w := c.Writer
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	sep := "["
	for {
		for _, it := range pg.Items {
			if _, err := w.WriteString(sep); err != nil {
				return
			}
			if err := enc.Encode(view(it)); err != nil {
				return
			}
			sep = ","
		}
		if paged || pg.Continue == "" {
			break
		}
		p.Continue = pg.Continue
		if pg, err = fetch(p); err != nil {
			// The status is sent: cut the response short, so that the
			// client sees truncated JSON rather than a short list.
			s.log.ErrorContext(c.Request.Context(), "list: next page", "what", what, "err", err, "requestId", c.GetString(ctxRequestID))
			panic(http.ErrAbortHandler)
		}
	}
	if sep == "[" {
		_, _ = w.WriteString("[")
	}
	_, _ = w.WriteString("]")
}

// failListErr maps an invalid continue token to 400 and other errors as failErr does.
func (s *Server) failListErr(c *gin.Context, what string, err error) {
	if errors.Is(err, store.ErrBadCursor) {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, err.Error()+"; start again without continue",
			apitypes.FieldError{Path: apitypes.QueryContinue, Message: "not a continue token of this list"})
		return
	}
	s.failErr(c, what, err)
}

// nextURL is u with its continue parameter set to tok (the Link header's target).
func nextURL(u *url.URL, tok string) string {
	q := u.Query()
	q.Set(apitypes.QueryContinue, tok)
	return u.Path + "?" + q.Encode()
}
