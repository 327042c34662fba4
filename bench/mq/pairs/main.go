// Command pairs reads the output of the mq consumer benchmarks (peerbench: each peer run several times,
// interleaved) from stdin and prints, per benchmark, each peer's median ns/op and cpu-ns/op and, for every
// other peer against the reference peers, min / median / max over the rounds of the per-round ratios of
// throughput (reference ns/op ÷ peer ns/op) and of CPU per message (reference cpu-ns/op ÷ peer
// cpu-ns/op): above 1 the peer is faster or cheaper. Round i of a peer is paired with round i of the
// reference.
//
//	go test -run '^$' -bench Consume -benchtime 20000x ./mq/nats | go run ./bench/mq/pairs
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// line: BenchmarkX/peer#01-2   20000   10078 ns/op   3820 cpu-ns/op   99221 msgs/s
var benchLine = regexp.MustCompile(`^(Benchmark[^/\s]+)/(\S+?)(#\d+)?(-\d+)?\s+\d+\s+(.*)$`)

type rounds struct{ ns, cpu []float64 }

func main() {
	refs := flag.String("ref", "plain,plain+otel", "reference peers, comma-separated")
	flag.Parse()
	type key struct{ bench, peer string }
	data := map[key]*rounds{}
	var benches []string
	peers := map[string][]string{}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		k := key{m[1], m[2]}
		r := data[k]
		if r == nil {
			r = &rounds{}
			data[k] = r
			if _, ok := peers[k.bench]; !ok {
				benches = append(benches, k.bench)
			}
			peers[k.bench] = append(peers[k.bench], k.peer)
		}
		f := strings.Fields(m[5])
		var ns, cpu float64
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				ns = v
			case "cpu-ns/op":
				cpu = v
			}
		}
		r.ns, r.cpu = append(r.ns, ns), append(r.cpu, cpu)
	}
	for _, bench := range benches {
		fmt.Printf("%s\n", bench)
		for _, p := range peers[bench] {
			r := data[key{bench, p}]
			fmt.Printf("  %-12s rounds %2d  ns/op median %8.0f  cpu-ns/op median %8.0f\n", p, len(r.ns), median(r.ns), median(r.cpu))
		}
		for _, ref := range strings.Split(*refs, ",") {
			rr := data[key{bench, ref}]
			if rr == nil {
				continue
			}
			for _, p := range peers[bench] {
				if slices.Contains(strings.Split(*refs, ","), p) {
					continue
				}
				pr := data[key{bench, p}]
				var wall, cpu []float64
				for i := 0; i < len(pr.ns) && i < len(rr.ns); i++ {
					if pr.ns[i] > 0 {
						wall = append(wall, rr.ns[i]/pr.ns[i])
					}
					if pr.cpu[i] > 0 {
						cpu = append(cpu, rr.cpu[i]/pr.cpu[i])
					}
				}
				fmt.Printf("  %s ÷ %s over %d pairs: wall %s; cpu %s\n", p, ref, len(wall), mmm(wall), mmm(cpu))
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// mmm renders min / median / max.
func mmm(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f×", slices.Min(v), median(v), slices.Max(v))
}
