// Package localtunnel owns the transport of local workloads: the machine
// identity a laptop keeps (an ed25519 key; its machine ID is a short hash of
// the public key), the handshake that proves it on a raw connection, the
// in-cluster Gateway that holds one multiplexed session per connected machine
// (inbound: DialLocal reaches a sandbox's local workload on its machine;
// outbound: the machine reaches cluster destinations a Policy allows), the
// laptop-side Client (reconnects, serves only the sandboxes it registered,
// dials the cluster and runs a SOCKS5 listener), and the `local:` section of
// the CLI configuration. It knows nothing of Kubernetes objects: the operator
// and the CLI wire it in. Stream framing is tunnelproto's, shared with the
// control plane's preview tunnel.
package localtunnel
