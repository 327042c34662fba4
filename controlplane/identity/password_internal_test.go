package identity

import (
	"errors"
	"testing"
)

// FuzzParsePHC feeds arbitrary stored hashes to the PHC parser: it must
// refuse them with ErrBadHash or return parameters within its bounds, and
// what it accepts must verify without panicking.
func FuzzParsePHC(f *testing.F) {
	small := Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32}
	h, _ := HashPassword("correct horse battery", small)
	f.Add(h)
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=255$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$v=19$m=64,t=1,p=1,x=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$$$$")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrBadHash) {
				t.Fatalf("error without ErrBadHash: %v", err)
			}
			return
		}
		p := h.params
		if p.Memory > maxMemory || p.Memory < 8*uint32(p.Threads) || p.Time < 1 || p.Time > maxTime || p.Threads < 1 || p.Threads > maxThreads ||
			len(h.key) < minKeyLen || len(h.key) > maxKeyLen || int(p.KeyLen) != len(h.key) {
			t.Fatalf("accepted out of bounds: %+v", p)
		}
		if p.Memory <= 1024 && p.Time <= 4 { // verify cheap ones end to end
			if _, _, err := VerifyPassword(s, "x", small); err != nil {
				t.Fatalf("parsed but does not verify: %v", err)
			}
		}
	})
}

// FuzzCheckSignUpFields feeds arbitrary emails and passwords to the
// validators of sign-up and invitations: they refuse with a
// *ValidationError naming the field, or accept, and never panic.
func FuzzCheckSignUpFields(f *testing.F) {
	f.Add("ann@example.com", "a long passphrase")
	f.Add("Ann <ann@example.com>", "ann@example.com")
	f.Add("\x00@\xff", "\xff\xfe\xfd")
	f.Add("a@b", "")
	f.Fuzz(func(t *testing.T, email, password string) {
		for _, err := range []error{checkEmail("email", email), CheckPassword("password", password, email)} {
			if err == nil {
				continue
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || (ve.Fields[0].Path != "email" && ve.Fields[0].Path != "password") {
				t.Fatalf("not a field error: %v", err)
			}
		}
	})
}
