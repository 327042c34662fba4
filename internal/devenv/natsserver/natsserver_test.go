package natsserver_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/natsserver"
)

func TestStartServesJetStream(t *testing.T) {
	s, err := natsserver.Start(natsserver.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	nc, err := nats.Connect(s.URL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(); err != nil {
		t.Fatalf("JetStream account info: %v", err)
	}
}

func TestStartRefusesBadAddr(t *testing.T) {
	for _, a := range []string{"nope", ":4222", "127.0.0.1:x"} {
		if _, err := natsserver.Start(natsserver.Config{Addr: a}); err == nil {
			t.Errorf("Start(%q) = nil error", a)
		}
	}
}
