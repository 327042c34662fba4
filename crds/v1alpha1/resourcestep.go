package v1alpha1

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// The contract between the operator, which runs the steps of resource
// plugins as pods, and `sandboxmesh-runner step`, which runs one step in such
// a pod (docs/design/resource-plugins.md): the step comes in EnvStepSpec as
// a StepSpec, its inputs as files in StepInputsDir, and its outputs go back
// in the container's termination message as a StepTermination.
const (
	// EnvStepSpec holds the JSON StepSpec of the step to run.
	EnvStepSpec = "SANDBOXMESH_STEP"
	// EnvTerminationLog overrides where the termination message is written
	// (tests; default /dev/termination-log).
	EnvTerminationLog = "SANDBOXMESH_TERMINATION_LOG"
	// StepInputsDir is where the step pod mounts its input values, one file
	// per StepSpecInput.Key.
	StepInputsDir = "/sandboxmesh/inputs"
	// MaxStepTermination bounds an encoded StepTermination: Kubernetes keeps
	// at most 4096 bytes of a termination message.
	MaxStepTermination = 4000
)

// StepSpec is one step of a resource plugin as the runner receives it.
type StepSpec struct {
	// Script is the step's script (it starts with #!).
	Script string `json:"script"`
	// Inputs are copied from StepInputsDir into the environment or files.
	Inputs []StepSpecInput `json:"inputs,omitempty"`
	// Outputs are read from files once the script succeeded.
	Outputs []StepSpecOutput `json:"outputs,omitempty"`
}

// StepSpecInput is one input of a step: the file Key in StepInputsDir,
// given to the script as the environment variable Env and/or the file Path.
type StepSpecInput struct {
	Key  string `json:"key"`
	Env  string `json:"env,omitempty"`
	Path string `json:"path,omitempty"`
}

// StepSpecOutput is one output of a step, read from the file Path.
type StepSpecOutput struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// StepTermination is what a step leaves in its termination message.
type StepTermination struct {
	// V is the format's version (1).
	V int `json:"v"`
	// Outputs by name (values that are not UTF-8 are base64 and listed in
	// Binary).
	Outputs map[string]string `json:"outputs,omitempty"`
	Binary  []string          `json:"binary,omitempty"`
	// ExitCode of the script (0: success).
	ExitCode int `json:"exitCode"`
	// Error says why the step failed when the runner saw it (an output not
	// written, outputs too large, the script could not start...).
	Error string `json:"error,omitempty"`
	// LogTail is the end of the script's output, for failure messages.
	LogTail string `json:"logTail,omitempty"`
}

// EncodeStepTermination encodes t; it fails when the result is longer than
// MaxStepTermination.
func EncodeStepTermination(t StepTermination) ([]byte, error) {
	t.V = 1
	b, err := json.Marshal(t)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxStepTermination {
		return nil, fmt.Errorf("step termination message is %d bytes; at most %d (the Kubernetes termination message limit)", len(b), MaxStepTermination)
	}
	return b, nil
}

// DecodeStepTermination decodes a termination message written by
// EncodeStepTermination.
func DecodeStepTermination(msg []byte) (StepTermination, error) {
	var t StepTermination
	if len(msg) > MaxStepTermination+96 { // kubelet may add nothing, but be lenient to whitespace
		return t, fmt.Errorf("step termination message is %d bytes; at most %d", len(msg), MaxStepTermination)
	}
	if err := json.Unmarshal(msg, &t); err != nil {
		return StepTermination{}, fmt.Errorf("step termination message: %w", err)
	}
	if t.V != 1 {
		return StepTermination{}, fmt.Errorf("step termination message: version %d, want 1", t.V)
	}
	for k, v := range t.Outputs {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return StepTermination{}, fmt.Errorf("step termination message: output %q is not UTF-8", k)
		}
	}
	return t, nil
}
