package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Paging limits.
const (
	// MaxPageSize caps PageRequest.Limit (larger limits are clamped, as the
	// Kubernetes API server may return fewer items than asked for).
	MaxPageSize = 500
	// maxCursorLen bounds a continue token before it is decoded.
	maxCursorLen = 1024
)

// ErrBadCursor means a continue token is malformed or was issued for another
// list (another org, kind, cluster or label selector).
var ErrBadCursor = errors.New("invalid continue token")

// PageRequest asks for one page of a list, in the list's order.
type PageRequest struct {
	// Limit is the maximum number of items; 0 or more than MaxPageSize means MaxPageSize.
	Limit int
	// Continue is the Continue of the previous page; empty for the first page.
	Continue string
}

// Page is one page of a list.
type Page[T any] struct {
	Items []T
	// Continue fetches the next page; empty when this page is the last one.
	Continue string
}

// cursor is the decoded form of a continue token: the sort key of the last
// item returned (Name, and At for lists ordered by creation time) and a digest
// of the list it belongs to.
type cursor struct {
	V     int    `json:"v"`
	Scope string `json:"s"`
	Name  string `json:"n"`
	At    int64  `json:"t,omitempty"`
}

// scopeOf digests what identifies a list: its kind and its parameters
// (org, cluster, the label selector in key order).
func scopeOf(list string, params ...string) string {
	h := fnv.New64a()
	h.Write([]byte(list))
	for _, p := range params {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// selectorParam renders a label selector canonically, for scopeOf.
func selectorParam(sel map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		b.WriteString(k + "=" + sel[k] + "\x01")
	}
	return b.String()
}

func encodeCursor(c cursor) string {
	c.V = 1
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor parses a continue token and checks that it belongs to scope.
// An empty token is the start of the list.
func decodeCursor(tok, scope string) (cursor, error) {
	if tok == "" {
		return cursor{}, nil
	}
	if len(tok) > maxCursorLen {
		return cursor{}, fmt.Errorf("%w: longer than %d bytes", ErrBadCursor, maxCursorLen)
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return cursor{}, fmt.Errorf("%w: not base64url", ErrBadCursor)
	}
	var c cursor
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return cursor{}, fmt.Errorf("%w: malformed", ErrBadCursor)
	}
	switch {
	case c.V != 1:
		return cursor{}, fmt.Errorf("%w: unknown version %d", ErrBadCursor, c.V)
	case c.Scope != scope:
		return cursor{}, fmt.Errorf("%w: issued for another list (another org, cluster or label selector)", ErrBadCursor)
	case c.Name == "":
		return cursor{}, fmt.Errorf("%w: no position", ErrBadCursor)
	}
	return c, nil
}

// scanPage runs one keyset page of a list: query is a SELECT with a WHERE
// clause (and ? placeholders for args) but no ORDER BY; nameCol is the unique
// column that orders the list (after created_at when byTime), so that an
// index on the WHERE columns plus the order columns serves every page
// without scanning what came before. keep, when not nil, filters rows (label
// selectors); the page then reads on until it has Limit items or the rows
// end. key returns an item's sort key.
func scanPage[T any](ctx context.Context, s *Store, p PageRequest, scope string, byTime bool, nameCol string,
	scan func(scanner) (T, error), key func(T) (int64, string), keep func(T) bool, query string, args ...any) (Page[T], error) {
	return scanPageOrder(ctx, s, p, scope, byTime, false, nameCol, scan, key, keep, query, args...)
}

// scanPageOrder is scanPage, in descending order when desc (newest first for
// lists by time).
func scanPageOrder[T any](ctx context.Context, s *Store, p PageRequest, scope string, byTime, desc bool, nameCol string,
	scan func(scanner) (T, error), key func(T) (int64, string), keep func(T) bool, query string, args ...any) (Page[T], error) {
	c, err := decodeCursor(p.Continue, scope)
	if err != nil {
		return Page[T]{}, err
	}
	limit := p.Limit
	if limit <= 0 || limit > MaxPageSize {
		limit = MaxPageSize
	}
	chunk := limit + 1 // one more than asked: is there a next page?
	if keep != nil {
		chunk = max(chunk, 256)
	}
	dir, cmp := "", ">"
	if desc {
		dir, cmp = " DESC", "<"
	}
	order := nameCol + dir
	if byTime {
		order = "created_at" + dir + ", " + nameCol + dir
	}
	out := Page[T]{Items: make([]T, 0, min(limit, 64))}
	for {
		q, a := query, slices.Clone(args)
		if c.Name != "" {
			if byTime {
				q += ` AND (created_at, ` + nameCol + `) ` + cmp + ` (?, ?)`
				a = append(a, c.At, c.Name)
			} else {
				q += ` AND ` + nameCol + ` ` + cmp + ` ?`
				a = append(a, c.Name)
			}
		}
		q += ` ORDER BY ` + order + ` LIMIT ` + strconv.Itoa(chunk)
		rows, err := scanRows(ctx, s, s.db, scan, q, a...)
		if err != nil {
			return Page[T]{}, err
		}
		for _, it := range rows {
			if keep != nil && !keep(it) {
				continue
			}
			if len(out.Items) == limit { // a further item exists: hand out a cursor
				at, name := key(out.Items[limit-1])
				out.Continue = encodeCursor(cursor{Scope: scope, Name: name, At: at})
				return out, nil
			}
			out.Items = append(out.Items, it)
		}
		if len(rows) < chunk {
			return out, nil
		}
		c.At, c.Name = key(rows[len(rows)-1])
	}
}
