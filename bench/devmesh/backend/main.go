// Command backend is the benchmark's app: a minimal server that answers every request with a small body
// and an X-Backend header naming itself, so routing can be checked. -mode http (HTTP/1.1), h2c (HTTP/1.1
// and HTTP/2 with prior knowledge) or grpc (a unary gRPC method bench.Echo/Call with the JSON codec,
// answering with the x-backend header).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	_ "github.com/sandboxmesh/sandboxmesh/devmesh/routeapi" // registers the "json" gRPC codec
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "listen address")
	name := flag.String("name", "baseline", "name returned in X-Backend")
	mode := flag.String("mode", "http", "http, h2c or grpc")
	flag.Parse()
	var err error
	if *mode == "grpc" {
		err = serveGRPC(*listen, *name)
	} else {
		err = serveHTTP(*listen, *name, *mode == "h2c")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}

func serveHTTP(listen, name string, h2c bool) error {
	body := []byte(fmt.Sprintf("hello from %s, a small JSON-ish payload of about a hundred bytes .......\n", name))
	srv := &http.Server{
		Addr:              listen,
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			h := w.Header()
			h["X-Backend"] = []string{name}
			h["Content-Type"] = []string{"text/plain"}
			_, _ = w.Write(body)
		}),
	}
	if h2c {
		var pr http.Protocols
		pr.SetHTTP1(true)
		pr.SetUnencryptedHTTP2(true)
		srv.Protocols = &pr
	}
	return srv.ListenAndServe()
}

func serveGRPC(listen, name string) error {
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	s := grpc.NewServer()
	answer := json.RawMessage(fmt.Sprintf(`{"text":"hello from %s"}`, name))
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "bench.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Call",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var in json.RawMessage
				if err := dec(&in); err != nil {
					return nil, err
				}
				_ = grpc.SetHeader(ctx, metadata.Pairs("x-backend", name))
				return &answer, nil
			},
		}},
	}, struct{}{})
	return s.Serve(lis)
}
