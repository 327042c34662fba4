// Package apiservertest tests the devmesh injector through a real kube-apiserver (envtest): the
// MutatingWebhookConfiguration from inject.MutatingWebhookConfiguration is installed, the handler is
// served by controller-runtime's webhook server, and pods are created with a client.
package apiservertest
