package script

import (
	"errors"
	"fmt"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Errors that limit violations wrap; test them with errors.Is.
var (
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("invalid script configuration")
	// ErrStepLimit reports that the script executed more than Config.MaxSteps steps.
	ErrStepLimit = errors.New("step limit exceeded")
	// ErrTimeout reports that the script ran longer than Config.Timeout.
	ErrTimeout = errors.New("script timed out")
	// ErrRequestLimit reports that the script made more than Config.MaxRequests HTTP calls.
	ErrRequestLimit = errors.New("HTTP request limit exceeded")
	// ErrBodyLimit reports a request or response body larger than Config.MaxBodyBytes.
	ErrBodyLimit = errors.New("body size limit exceeded")
	// ErrAbandoned reports that the script did not stop within Config.AbandonGrace of its deadline, because a
	// built-in that does not observe cancellation was running (for example str() of a deeply nested value):
	// Run returned without it and the goroutine running it ends when the built-in returns. An executor that
	// sees it should exit its process. It comes with ErrTimeout or the caller's context error.
	ErrAbandoned = errors.New("script abandoned")
	// ErrSleepLimit reports a time.sleep longer than Config.MaxSleep.
	ErrSleepLimit = errors.New("sleep limit exceeded")
)

// ErrorKind classifies an Error.
type ErrorKind string

// Error kinds.
const (
	// KindSyntax is a scan, parse or name-resolution error: the script did not start.
	KindSyntax ErrorKind = "syntax"
	// KindRuntime is an error raised while the script ran, including fail() and limit violations.
	KindRuntime ErrorKind = "runtime"
)

// SourcePosition is a position in a script; Line and Col count from 1.
type SourcePosition struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// String formats the position as file:line:col.
func (p SourcePosition) String() string {
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

func positionOf(p syntax.Position) SourcePosition {
	return SourcePosition{File: p.Filename(), Line: int(p.Line), Col: int(p.Col)}
}

// Error is a script error with the position in the script it points at.
type Error struct {
	Kind ErrorKind
	// Pos is the innermost script position of the error (for a runtime error, the script line that was
	// executing, not the built-in it called).
	Pos SourcePosition
	// Msg is the error message without the position.
	Msg string
	// Backtrace is the Starlark call stack of a runtime error ("Traceback (most recent call last): ...").
	Backtrace string
	// More holds further syntax errors after the first one.
	More []*Error
	err  error
}

// Error returns "file:line:col: message" ("file: message" when the line is not known).
func (e *Error) Error() string {
	if e.Pos.Line == 0 {
		return e.Pos.File + ": " + e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// Unwrap returns the underlying error, so errors.Is finds the limit errors and context errors.
func (e *Error) Unwrap() error { return e.err }

// syntaxError converts a parse or resolve error; others are returned unchanged.
func syntaxError(err error) error {
	var se syntax.Error
	if errors.As(err, &se) {
		return &Error{Kind: KindSyntax, Pos: positionOf(se.Pos), Msg: se.Msg, err: err}
	}
	var list resolve.ErrorList
	if errors.As(err, &list) && len(list) > 0 {
		first := &Error{Kind: KindSyntax, Pos: positionOf(list[0].Pos), Msg: list[0].Msg, err: err}
		for _, e := range list[1:] {
			first.More = append(first.More, &Error{Kind: KindSyntax, Pos: positionOf(e.Pos), Msg: e.Msg})
		}
		return first
	}
	return err
}

// runtimeError converts an evaluation error, replacing a cancellation by its cause (limit or context).
func runtimeError(err error, cause error) error {
	var ee *starlark.EvalError
	if !errors.As(err, &ee) {
		return err
	}
	out := &Error{Kind: KindRuntime, Msg: ee.Msg, Backtrace: ee.Backtrace(), err: err}
	for i := len(ee.CallStack) - 1; i >= 0; i-- {
		if p := ee.CallStack[i].Pos; p.IsValid() && p.Filename() != "<builtin>" {
			out.Pos = positionOf(p)
			break
		}
	}
	if cause != nil {
		out.Msg = cause.Error()
		out.err = cause
	}
	return out
}
