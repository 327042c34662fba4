// Command backend is the benchmark's app: a minimal HTTP/1.1 server that answers every request with a
// small body and an X-Backend header naming itself, so routing can be checked.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "listen address")
	name := flag.String("name", "baseline", "name returned in X-Backend")
	flag.Parse()
	body := []byte(fmt.Sprintf("hello from %s, a small JSON-ish payload of about a hundred bytes .......\n", *name))
	srv := &http.Server{
		Addr:              *listen,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			h := w.Header()
			h["X-Backend"] = []string{*name}
			h["Content-Type"] = []string{"text/plain"}
			_, _ = w.Write(body)
		}),
	}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}
