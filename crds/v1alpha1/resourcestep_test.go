package v1alpha1

import (
	"strings"
	"testing"
)

// FuzzDecodeStepTermination: any message decodes or fails cleanly; what
// decodes is version 1 and survives a re-encode.
func FuzzDecodeStepTermination(f *testing.F) {
	for _, s := range []string{`{"v":1,"outputs":{"host":"db"},"exitCode":0}`, `{"v":2}`, `{}`, `null`, `{"v":1,"exitCode":3,"logTail":"x\n"}`, strings.Repeat("a", 5000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		st, err := DecodeStepTermination(msg)
		if err != nil {
			return
		}
		if st.V != 1 {
			t.Fatalf("%q decoded with version %d", msg, st.V)
		}
		if b, err := EncodeStepTermination(st); err == nil {
			if back, err := DecodeStepTermination(b); err != nil || len(back.Outputs) != len(st.Outputs) {
				t.Fatalf("%q: re-encoded message does not decode the same: %v", msg, err)
			}
		}
	})
}

func TestStepTerminationLimit(t *testing.T) {
	if _, err := EncodeStepTermination(StepTermination{Outputs: map[string]string{"x": strings.Repeat("y", 4000)}}); err == nil {
		t.Fatal("a message over the limit encoded")
	}
	b, err := EncodeStepTermination(StepTermination{Outputs: map[string]string{"host": "db"}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := DecodeStepTermination(b)
	if err != nil || st.Outputs["host"] != "db" || st.V != 1 {
		t.Fatalf("round trip: %+v %v", st, err)
	}
}
