package apitypes

// DecodeSandbox decodes a sandbox body ({name, spec}, JSON) as the API does:
// DecodeWire with SandboxWireRules, then Signadot's older endpoint shapes
// (spec.endpoints, spec.forks[].endpoints) moved into
// spec.defaultRouteGroup.endpoints. It returns the sandbox, the legacy
// endpoints it found (to echo them back) and the field errors of the move;
// err is a decoding error (*WireError). The spec is not validated: callers
// run ValidateSandboxSpec.
func DecodeSandbox(body []byte) (Sandbox, LegacyEndpoints, FieldErrors, error) {
	var sb Sandbox
	ext, err := DecodeWire(body, &sb, SandboxWireRules)
	if err != nil {
		return Sandbox{}, LegacyEndpoints{}, nil, err
	}
	legacy, err := SandboxLegacyEndpoints(ext)
	if err != nil {
		return Sandbox{}, LegacyEndpoints{}, nil, err
	}
	return sb, legacy, legacy.Apply(&sb.Spec), nil
}
