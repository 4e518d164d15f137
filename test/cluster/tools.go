//go:build tools

// Package tools pins kube-apiserver's main package into this module so that
// `go build k8s.io/kubernetes/cmd/kube-apiserver` resolves from go.mod.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
