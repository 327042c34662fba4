package artifacts

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		org, job, space, path string
		attempt               int64
		want                  string
		wantErr               string
	}{
		{name: "relative", org: "acme", job: "e2e-abcde", space: SpaceUser, path: "out/report.xml", want: "acme/e2e-abcde/0/user/ab36e9d9dd60d3d7e21e61c34f6118b8a58d0c5efd2a96d7bbe52b4878b6fcc4"},
		{name: "absolute in the pod", org: "acme", job: "j", attempt: 2, space: SpaceUser, path: "/tmp/r.xml", want: "acme/j/2/user/09232818f17485a6160ce6ed6c92a1be1baf93accf0296193e8b528696354727"},
		{name: "system stdout", org: "acme", job: "j", space: SpaceSystem, path: "stdout", want: "acme/j/0/system/63d42d26156fcc761e57da4128e9881d5bdf3bf933f0f6e9c93d6e26b9b90ae7"},
		{name: "hidden file", org: "acme", job: "j", space: SpaceUser, path: ".hidden", want: "acme/j/0/user/1692419006a88aab3372cf255367e2ccbc605066a5130dbeee69cb823d803eb5"},
		{name: "empty path", org: "acme", job: "j", space: SpaceUser, path: "", wantErr: "required"},
		{name: "dotdot", org: "acme", job: "j", space: SpaceUser, path: "a/../../etc/passwd", wantErr: ".. segments"},
		{name: "only dotdot", org: "acme", job: "j", space: SpaceUser, path: "..", wantErr: ".. segments"},
		{name: "dot segment", org: "acme", job: "j", space: SpaceUser, path: "./x", wantErr: ". segments"},
		{name: "NUL", org: "acme", job: "j", space: SpaceUser, path: "a\x00b", wantErr: "control character"},
		{name: "newline", org: "acme", job: "j", space: SpaceUser, path: "a\nb", wantErr: "control character"},
		{name: "too long", org: "acme", job: "j", space: SpaceUser, path: strings.Repeat("x", 1025), wantErr: "at most"},
		{name: "bad space", org: "acme", job: "j", space: "other", path: "x", wantErr: "space"},
		{name: "negative attempt", org: "acme", job: "j", attempt: -1, space: SpaceUser, path: "x", wantErr: "negative"},
		{name: "empty org", org: "", job: "j", space: SpaceUser, path: "x", wantErr: "org is empty"},
		{name: "org escape", org: "..", job: "j", space: SpaceUser, path: "x", want: "%2E./j/0/user/2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},
		{name: "job with slash", org: "acme", job: "a/b", space: SpaceUser, path: "x", want: "acme/a%2Fb/0/user/2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Key(tc.org, tc.job, tc.attempt, tc.space, tc.path)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Key = %q, %v; want error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Key = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// FuzzKey: whatever the names, a key Key accepts is five clean segments that
// stay under their job's prefix and that the stores accept.
func FuzzKey(f *testing.F) {
	for _, s := range [][3]string{
		{"acme", "job-1", "out/report.xml"}, {"acme", "j", "/tmp/x"}, {"..", "..", ".."},
		{"a/b", "c", "../../etc"}, {"o", "j", "a\x00b"}, {"o", "j", "./."}, {"o", "j", "%2e%2e"}, {"o", "j", "a\\..\\b"},
	} {
		f.Add(s[0], s[1], int64(0), s[2])
	}
	f.Fuzz(func(t *testing.T, org, job string, attempt int64, p string) {
		k, err := Key(org, job, attempt, SpaceUser, p)
		if err != nil {
			return
		}
		if checkKey(k, false) != nil {
			t.Fatalf("Key(%q,%q,%d,%q) = %q, which checkKey refuses: %v", org, job, attempt, p, k, checkKey(k, false))
		}
		segs := strings.Split(k, "/")
		if len(segs) != 5 {
			t.Fatalf("key %q has %d segments", k, len(segs))
		}
		pre, err := Prefix(org, job)
		if err != nil || !strings.HasPrefix(k, pre) {
			t.Fatalf("key %q not under prefix %q (%v)", k, pre, err)
		}
		if path.Clean("/"+k) != "/"+k {
			t.Fatalf("key %q is not clean", k)
		}
		if last := segs[4]; len(last) != 64 || strings.Trim(last, "0123456789abcdef") != "" {
			t.Fatalf("key %q: last segment is not a hex SHA-256 (the path must never reach a store)", k)
		}
	})
}

func TestParseURL(t *testing.T) {
	env := map[string]string{EnvAccessKey: "ak", EnvSecretKey: "sk"}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		name, url string
		dir       string
		cfg       Config
		wantErr   string
	}{
		{name: "file", url: "file:///var/lib/art", dir: "/var/lib/art"},
		{name: "s3 full", url: "s3://bkt/a/b/?endpoint=minio:9000&region=eu-west-1&secure=false",
			cfg: Config{Endpoint: "minio:9000", Bucket: "bkt", Region: "eu-west-1", AccessKey: "ak", SecretKey: "sk", Prefix: "a/b"}},
		{name: "s3 defaults", url: "s3://bkt", cfg: Config{Endpoint: "s3.amazonaws.com", Bucket: "bkt", AccessKey: "ak", SecretKey: "sk", Secure: true}},
		{name: "empty", url: "", wantErr: "empty"},
		{name: "relative file", url: "file:relative", wantErr: "not an absolute path URL"},
		{name: "file host", url: "file://host/x", wantErr: "no host"},
		{name: "creds in URL", url: "s3://key:secret@bkt/x", wantErr: "credentials do not belong"},
		{name: "unknown scheme", url: "gs://b", wantErr: `unknown scheme "gs"`},
		{name: "no scheme", url: "/var/x", wantErr: "no scheme"},
		{name: "no bucket", url: "s3:///x", wantErr: "no bucket"},
		{name: "unknown param", url: "s3://b?foo=1", wantErr: `unknown query parameter "foo"`},
		{name: "bad secure", url: "s3://b?secure=maybe", wantErr: "secure="},
		{name: "bad endpoint", url: "s3://b?endpoint=http://x", wantErr: "not host[:port]"},
		{name: "bad prefix", url: "s3://b/a/../c", wantErr: "prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, cfg, err := ParseURL(tc.url, getenv)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseURL(%q) = %q %+v %v; want error with %q", tc.url, dir, cfg, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("error shows the secret: %v", err)
				}
				return
			}
			if err != nil || dir != tc.dir || cfg != tc.cfg {
				t.Fatalf("ParseURL(%q) = %q %+v %v; want %q %+v", tc.url, dir, cfg, err, tc.dir, tc.cfg)
			}
		})
	}
	t.Run("s3 without credentials", func(t *testing.T) {
		_, _, err := ParseURL("s3://b", func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), EnvAccessKey) {
			t.Fatalf("err %v", err)
		}
	})
}

// FuzzParseURL: ParseURL never panics, never shows user info in an error,
// and what it accepts is a usable folder or config.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"file:///x", "s3://b/p?endpoint=h:1&secure=false", "s3://u:p@b", "file://h/x", "s3://b?secure=1&secure=0", "%zz", "s3://b/../x"} {
		f.Add(s)
	}
	getenv := func(k string) string { return "v" }
	f.Fuzz(func(t *testing.T, s string) {
		dir, cfg, err := ParseURL(s, getenv)
		if err != nil {
			if strings.Contains(s, "@") && strings.Contains(s, "p4ssw0rd") && strings.Contains(err.Error(), "p4ssw0rd") {
				t.Fatalf("error shows the password: %v", err)
			}
			return
		}
		if dir == "" && (cfg.Bucket == "" || cfg.Endpoint == "") {
			t.Fatalf("accepted %q without a folder or bucket: %+v", s, cfg)
		}
		if dir != "" && !strings.HasPrefix(dir, "/") {
			t.Fatalf("accepted relative folder %q", dir)
		}
	})
}
