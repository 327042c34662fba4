package executor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
	"github.com/sandboxmesh/sandboxmesh/smarttest/executor"
	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// ExampleExecute runs a smart test against a local app whose "sandbox" (routing key k1) answers another ETA,
// then diffs the target run's captures against the baseline runs'.
func ExampleExecute() {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		eta := "5m"
		if key, _ := routingkey.Default.Extract(r.Header); key == "k1" {
			eta = "7m"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"eta": eta, "at": time.Now().UnixNano()})
	}))
	defer app.Close()

	rep, err := executor.Execute(context.Background(), executor.Config{
		Execution: "ex1",
		Filename:  "eta.star",
		Source: fmt.Sprintf(`
res = http.get(%q, params={"customer": "392"}, capture=True, name="eta")
smart_test.check("ok", res.status_code == 200, "status {}", res.status_code)
`, app.URL+"/dispatch"),
		RoutingKey: "k1",
		Namespace:  "hotrod",
		Name:       "eta-job",
		Limits:     script.Config{Timeout: time.Minute},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rep.Runs {
		fmt.Println(r.Name, r.Result.Passed(), r.Captures[0].ID, r.Captures[0].Point)
	}
	res := diff.Compare(rep.Runs[0].Captures, rep.Runs[1].Captures, rep.Runs[2].Captures, diff.Options{})
	for _, f := range res.Findings {
		fmt.Println(f.Category, f.Name, f.Path, string(f.OldValue), "->", string(f.Value))
	}
	fmt.Println("green:", res.Summary.Green.Replacements)
	// Output:
	// target true ex1.target.0 Job/hotrod/eta-job/Outbound
	// baseline-a true ex1.baseline-a.0 Job/hotrod/eta-job/Outbound
	// baseline-b true ex1.baseline-b.0 Job/hotrod/eta-job/Outbound
	// yellow eta /response/body/eta "5m" -> "7m"
	// green: 1
}
