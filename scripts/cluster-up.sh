#!/usr/bin/env bash
# Create (or reuse) a local kind cluster with everything virtwake needs:
# KubeVirt with software emulation (no /dev/kvm needed), Knative Serving with
# the Kourier networking layer, Knative Eventing with the in-memory channel and
# the MT channel-based Broker. Safe to run again: every step is idempotent.
#
# Needs: kind, kubectl, and a container engine kind can use (docker, or podman
# with KIND_EXPERIMENTAL_PROVIDER=podman). Downloads release manifests from
# GitHub, so it needs network access.
#
# Usage: scripts/cluster-up.sh            (env overrides: see the variables below)
set -euo pipefail

# --- pinned versions ---------------------------------------------------------
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5}" # kind v0.32.0 default
KUBEVIRT_VERSION="${KUBEVIRT_VERSION:-v1.9.0}"
KNATIVE_SERVING_VERSION="${KNATIVE_SERVING_VERSION:-knative-v1.23.0}"
KNATIVE_KOURIER_VERSION="${KNATIVE_KOURIER_VERSION:-knative-v1.23.0}"
KNATIVE_EVENTING_VERSION="${KNATIVE_EVENTING_VERSION:-knative-v1.22.2}"

CLUSTER_NAME="${CLUSTER_NAME:-virtwake}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-15m}"

KUBEVIRT_URL="https://github.com/kubevirt/kubevirt/releases/download/${KUBEVIRT_VERSION}"
SERVING_URL="https://github.com/knative/serving/releases/download/${KNATIVE_SERVING_VERSION}"
KOURIER_URL="https://github.com/knative-extensions/net-kourier/releases/download/${KNATIVE_KOURIER_VERSION}"
EVENTING_URL="https://github.com/knative/eventing/releases/download/${KNATIVE_EVENTING_VERSION}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'cluster-up: %s\n' "$*" >&2; exit 1; }
# retry N CMD...: run CMD up to N times, 5 s apart (admission webhooks that have
# just started can refuse the first calls).
retry() {
  local attempts="$1" i
  shift
  for ((i = 1; i <= attempts; i++)); do
    if "$@"; then return 0; fi
    log "attempt ${i}/${attempts} failed: $*"
    sleep 5
  done
  return 1
}

for tool in kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

# --- kind cluster ------------------------------------------------------------
# One node keeps the footprint small. Host port 31080 reaches Kourier's
# NodePort, so the public wake proxy can be tried from the host with a Host header.
create_cluster() {
  local config
  config="$(mktemp)"
  # shellcheck disable=SC2064 # expand now: the path is fixed
  trap "rm -f '${config}'" RETURN
  cat >"${config}" <<'KIND_CONFIG'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - containerPort: 31080
        hostPort: 31080
        listenAddress: 127.0.0.1
        protocol: TCP
KIND_CONFIG
  kind create cluster --name "${CLUSTER_NAME}" --image "${KIND_NODE_IMAGE}" --config "${config}" --wait 5m
}

if kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}"; then
  log "kind cluster ${CLUSTER_NAME} exists, reusing it"
else
  log "creating kind cluster ${CLUSTER_NAME}"
  create_cluster
fi
kubectl config use-context "kind-${CLUSTER_NAME}" >/dev/null

# --- KubeVirt ----------------------------------------------------------------
log "installing KubeVirt ${KUBEVIRT_VERSION}"
kubectl apply -f "${KUBEVIRT_URL}/kubevirt-operator.yaml"
kubectl wait --for=condition=Established --timeout="${WAIT_TIMEOUT}" crd/kubevirts.kubevirt.io
kubectl apply -f "${KUBEVIRT_URL}/kubevirt-cr.yaml"
# Software emulation (QEMU TCG): kind nodes have no nested virtualisation.
# The Snapshot feature gate is Beta and on by default from v1.9.0.
retry 5 kubectl -n kubevirt patch kubevirt kubevirt --type=merge \
  -p '{"spec":{"configuration":{"developerConfiguration":{"useEmulation":true}}}}'

# --- Knative Serving + Kourier -----------------------------------------------
log "installing Knative Serving ${KNATIVE_SERVING_VERSION} and Kourier ${KNATIVE_KOURIER_VERSION}"
kubectl apply -f "${SERVING_URL}/serving-crds.yaml"
kubectl wait --for=condition=Established --timeout="${WAIT_TIMEOUT}" crd/services.serving.knative.dev
kubectl apply -f "${SERVING_URL}/serving-core.yaml"
# Its webhook validates the config maps patched below.
kubectl -n knative-serving wait --for=condition=Available --timeout="${WAIT_TIMEOUT}" deployment/webhook
kubectl apply -f "${KOURIER_URL}/kourier.yaml"
retry 5 kubectl -n knative-serving patch configmap config-network --type=merge \
  -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev"}}'
# kind has no LoadBalancer: expose Kourier's HTTP port on the NodePort mapped in
# the kind config (a merge patch replaces the port list; HTTPS is not needed here).
retry 5 kubectl -n kourier-system patch service kourier --type=merge \
  -p '{"spec":{"type":"NodePort","ports":[{"name":"http2","port":80,"protocol":"TCP","targetPort":8080,"nodePort":31080}]}}'
# Names like <ksvc>.<ns>.127.0.0.1.sslip.io resolve to the host's port mapping.
retry 5 kubectl -n knative-serving patch configmap config-domain --type=merge \
  -p '{"data":{"127.0.0.1.sslip.io":""}}'

# --- Knative Eventing: core, in-memory channel, MT channel-based Broker --------
log "installing Knative Eventing ${KNATIVE_EVENTING_VERSION}"
kubectl apply -f "${EVENTING_URL}/eventing-crds.yaml"
kubectl wait --for=condition=Established --timeout="${WAIT_TIMEOUT}" \
  crd/brokers.eventing.knative.dev crd/triggers.eventing.knative.dev crd/eventtypes.eventing.knative.dev
kubectl apply -f "${EVENTING_URL}/eventing-core.yaml"
kubectl -n knative-eventing wait --for=condition=Available --timeout="${WAIT_TIMEOUT}" deployment/eventing-webhook
retry 5 kubectl apply -f "${EVENTING_URL}/in-memory-channel.yaml"
retry 5 kubectl apply -f "${EVENTING_URL}/mt-channel-broker.yaml"

# --- wait for readiness ------------------------------------------------------
log "waiting for Knative Serving"
kubectl -n knative-serving wait --for=condition=Available --timeout="${WAIT_TIMEOUT}" deployment --all
kubectl -n kourier-system wait --for=condition=Available --timeout="${WAIT_TIMEOUT}" deployment --all
log "waiting for Knative Eventing"
# (pingsource-mt-adapter has 0 replicas until a PingSource exists; a Deployment
# scaled to 0 counts as Available.)
kubectl -n knative-eventing wait --for=condition=Available --timeout="${WAIT_TIMEOUT}" deployment --all
log "waiting for KubeVirt (first start pulls several images)"
kubectl -n kubevirt wait kubevirt/kubevirt --for=condition=Available --timeout="${WAIT_TIMEOUT}"

log "cluster ${CLUSTER_NAME} is ready: KubeVirt ${KUBEVIRT_VERSION}, Serving ${KNATIVE_SERVING_VERSION}, Eventing ${KNATIVE_EVENTING_VERSION}"
