//go:build tools

// Package tools pins the Knative Eventing programs the rig runs into this module, so
// `go build knative.dev/eventing/cmd/...` resolves from go.mod. A module of its own because
// Eventing v0.49 (Knative 1.22) builds against k8s.io v0.35, the parent module against v0.36.
package tools

import (
	_ "knative.dev/eventing/cmd/apiserver_receive_adapter"
	_ "knative.dev/eventing/cmd/broker/filter"
	_ "knative.dev/eventing/cmd/broker/ingress"
	_ "knative.dev/eventing/cmd/controller"
	_ "knative.dev/eventing/cmd/in_memory/channel_controller"
	_ "knative.dev/eventing/cmd/in_memory/channel_dispatcher"
	_ "knative.dev/eventing/cmd/mtchannel_broker"
	_ "knative.dev/eventing/cmd/mtping"
	_ "knative.dev/eventing/cmd/webhook"
)
