package script_test

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// memoryBomb matches sources with large literals or shifts: one operation on such a number can allocate
// gigabytes, which the runtime documents as not bounded (the executor's memory limit is); the fuzz test
// looks for panics and hangs, not for that.
var memoryBomb = regexp.MustCompile(`[0-9]{6,}|<<|0x|0o|0b|[eE][0-9]`)

// FuzzRun runs arbitrary sources with small limits: Run must return (no panic, no hang) with either no error
// or a *script.Error.
func FuzzRun(f *testing.F) {
	for _, s := range []string{
		"",
		"x = 1",
		"print('hi')",
		"while True:\n    pass\n",
		"def f(n):\n    return f(n)\nf(1)\n",
		"res = http.get('http://h/echo', params={'a': 1}, capture=True, name='n')\nassert.eq(res.status_code, 200)\n",
		"http.post('http://h/echo', json_body={'a': [1, 2]}).json()['body']",
		"ck = smart_test.check('c')\nck.error('x {}', 1)\nsmart_test.check('d', False, 'm')\n",
		"time.sleep(0.0001)\ntime.now()\n",
		"json.decode('{\"a\": [1, 2, {\"b\": null}]}')",
		"s = 'ab' * 10\nl = [s] * 10\nd = {x: x for x in l}\n",
		"x = (\n",
		"load('a.star', 'b')",
		"fail('boom')",
		"http.request('GET', 'http://h/big?n=100000')",
		"for i in range(10):\n    http.get('http://h/echo')\n",
		"a = [1]\nfor i in range(20):\n    a = a + a\n",
		"math.pow(2, 10)\nsorted([3, 1, 2], reverse=True)\n",
	} {
		f.Add(s)
	}
	_, doer := newServer(f)
	f.Fuzz(func(t *testing.T, src string) {
		if memoryBomb.MatchString(src) {
			t.Skip("large literal")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := script.Run(ctx, script.Config{
			Source:       src,
			HTTP:         doer,
			MaxSteps:     20_000,
			Timeout:      2 * time.Second,
			HTTPTimeout:  200 * time.Millisecond,
			MaxRequests:  3,
			MaxBodyBytes: 4096,
			MaxSleep:     time.Millisecond,
			MaxLogBytes:  1024,
		})
		if res == nil {
			t.Fatalf("nil result (err %v)", err)
		}
		var se *script.Error
		if err != nil && !errors.As(err, &se) {
			t.Fatalf("err %v (%T) is not a *script.Error", err, err)
		}
		if res.Steps > 20_000+100 {
			t.Fatalf("ran %d steps, limit 20000", res.Steps)
		}
		if res.Requests > 4 {
			t.Fatalf("made %d requests, limit 3", res.Requests)
		}
	})
}
