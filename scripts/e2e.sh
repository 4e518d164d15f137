#!/usr/bin/env bash
# End-to-end test of virtwake on a kind cluster made by scripts/cluster-up.sh:
# build the image, load it into kind, `kubectl apply -k` the manifests in
# knative/ (image overridden), create a demo VM, subscribe an event display to
# the result events, send every command through the Broker from a pod with
# curl, and check both the VM's state (kubectl) and the result event (display
# logs). Everything it created is deleted on exit (KEEP=1 keeps it).
#
# Needs: kind, kubectl, docker or podman (or `func` with BUILDER=func), and a
# cluster from scripts/cluster-up.sh.
#
# Usage: scripts/e2e.sh                   (env overrides: see the variables below)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

CLUSTER_NAME="${CLUSTER_NAME:-virtwake}"
# The manifests live in this namespace (knative/kustomization.yaml).
NS=virtwake
# kind.local/* is in Knative's registries-skipping-tag-resolving default, so a
# kind-loaded image is used as is, without a registry lookup.
IMAGE="${IMAGE:-kind.local/virtwake:e2e}"
BUILDER="${BUILDER:-containerfile}"            # containerfile | func
CONTAINER_ENGINE="${CONTAINER_ENGINE:-docker}" # docker | podman (BUILDER=containerfile)
FUNC_CLI="${FUNC_CLI:-func}"                   # `func`, or "kn func" as a kn plugin
KUBEVIRT_VERSION="${KUBEVIRT_VERSION:-v1.9.0}"
DEMO_VM_IMAGE="${DEMO_VM_IMAGE:-quay.io/kubevirt/cirros-container-disk-demo:${KUBEVIRT_VERSION}}"
EVENT_DISPLAY_IMAGE="${EVENT_DISPLAY_IMAGE:-gcr.io/knative-releases/knative.dev/eventing/cmd/event_display}"
CURL_IMAGE="${CURL_IMAGE:-docker.io/curlimages/curl:8.17.0}"
WAIT_TIMEOUT="${WAIT_TIMEOUT:-10m}"
REPLY_TIMEOUT="${REPLY_TIMEOUT:-300}" # seconds to wait for one result event
KEEP="${KEEP:-0}"

SOURCE=/virtwake-e2e
DISPLAY_NAME=virtwake-e2e-display
CLIENT_POD=virtwake-e2e-client
VM=demo
WORK="" # temporary overlay, made below
BROKER_URL=""

log() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'e2e: FAIL: %s\n' "$*" >&2; exit 1; }

for tool in kind kubectl; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed"
done
kind get clusters 2>/dev/null | grep -qx "${CLUSTER_NAME}" \
  || fail "no kind cluster ${CLUSTER_NAME}: run scripts/cluster-up.sh first"
kubectl config use-context "kind-${CLUSTER_NAME}" >/dev/null

# --- cleanup -------------------------------------------------------------------
diagnostics() {
  log "diagnostics"
  kubectl -n "${NS}" get broker,trigger,ksvc,pingsource,vm,vmi,vmsnapshot,vmrestore,pods -o wide || true
  kubectl -n "${NS}" logs "deploy/${DISPLAY_NAME}" --tail=100 || true
  kubectl -n "${NS}" logs -l serving.knative.dev/service -c virtwake --tail=50 --prefix || true
}

cleanup() {
  local rc=$?
  trap - EXIT
  if [[ ${rc} -ne 0 ]]; then diagnostics; fi
  if [[ "${KEEP}" == 1 ]]; then
    log "KEEP=1: leaving namespace ${NS} in place (overlay in ${WORK})"
    exit "${rc}"
  fi
  log "cleaning up"
  # The VM and its snapshots first, while the KubeVirt controllers can still
  # remove their finalizers; then the manifests, which include the namespace.
  kubectl -n "${NS}" delete vm "${VM}" --ignore-not-found --timeout=2m || true
  kubectl -n "${NS}" delete vmrestore,vmsnapshot --all --ignore-not-found --timeout=2m || true
  kubectl -n "${NS}" delete pod "${CLIENT_POD}" --ignore-not-found --wait=false || true
  if [[ -f "${WORK}/kustomization.yaml" ]]; then
    kubectl delete -k "${WORK}" --ignore-not-found --timeout=5m || true
  fi
  rm -rf "${WORK}"
  exit "${rc}"
}
WORK="$(mktemp -d)"
trap cleanup EXIT

# --- build and load the image --------------------------------------------------
log "building ${IMAGE} (${BUILDER})"
case "${BUILDER}" in
  containerfile)
    "${CONTAINER_ENGINE}" build -f "${ROOT}/Containerfile" -t "${IMAGE}" "${ROOT}"
    if [[ "${CONTAINER_ENGINE}" == docker ]]; then
      kind load docker-image "${IMAGE}" --name "${CLUSTER_NAME}"
    else
      "${CONTAINER_ENGINE}" save -o "${WORK}/image.tar" "${IMAGE}"
      kind load image-archive "${WORK}/image.tar" --name "${CLUSTER_NAME}"
    fi
    ;;
  func)
    # Buildpacks (func.yaml: builder pack). Note: func records the image in func.yaml.
    # shellcheck disable=SC2086 # FUNC_CLI may be two words ("kn func")
    ${FUNC_CLI} build --path "${ROOT}" --image "${IMAGE}"
    kind load docker-image "${IMAGE}" --name "${CLUSTER_NAME}"
    ;;
  *) fail "unknown BUILDER ${BUILDER} (containerfile|func)" ;;
esac

# --- deploy knative/ with the image overridden ---------------------------------
log "applying knative/ (image ${IMAGE})"
cp -R "${ROOT}/knative" "${WORK}/base"
cat >"${WORK}/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - base
images:
  - name: ghcr.io/virtwake/virtwake
    newName: ${IMAGE%:*}
    newTag: ${IMAGE##*:}
EOF
kubectl apply -k "${WORK}"
kubectl -n "${NS}" wait --for=condition=Ready --timeout="${WAIT_TIMEOUT}" broker/virtwake
kubectl -n "${NS}" wait --for=condition=Ready --timeout="${WAIT_TIMEOUT}" ksvc --all
kubectl -n "${NS}" wait --for=condition=Ready --timeout="${WAIT_TIMEOUT}" trigger --all
kubectl -n "${NS}" wait --for=condition=Ready --timeout="${WAIT_TIMEOUT}" pingsource/virtwake-reaper
BROKER_URL="$(kubectl -n "${NS}" get broker virtwake -o jsonpath='{.status.address.url}')"
[[ -n "${BROKER_URL}" ]] || fail "Broker virtwake has no address"
log "Broker URL: ${BROKER_URL}"

# --- result display, client pod, demo VM ---------------------------------------
log "starting the event display and its Trigger on result events"
kubectl apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${DISPLAY_NAME}
  namespace: ${NS}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: ${DISPLAY_NAME}
  template:
    metadata:
      labels:
        app: ${DISPLAY_NAME}
    spec:
      containers:
        - name: display
          image: ${EVENT_DISPLAY_IMAGE}
          ports:
            - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: ${DISPLAY_NAME}
  namespace: ${NS}
spec:
  selector:
    app: ${DISPLAY_NAME}
  ports:
    - port: 80
      targetPort: 8080
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: ${DISPLAY_NAME}
  namespace: ${NS}
spec:
  broker: virtwake
  filters:
    - any:
        - suffix:
            type: .accepted
        - suffix:
            type: .completed
        - suffix:
            type: .failed
  subscriber:
    ref:
      apiVersion: v1
      kind: Service
      name: ${DISPLAY_NAME}
EOF
kubectl -n "${NS}" rollout status "deploy/${DISPLAY_NAME}" --timeout="${WAIT_TIMEOUT}"
kubectl -n "${NS}" wait --for=condition=Ready --timeout="${WAIT_TIMEOUT}" "trigger/${DISPLAY_NAME}"

kubectl -n "${NS}" run "${CLIENT_POD}" --image="${CURL_IMAGE}" --restart=Never --command -- sleep 3600
kubectl -n "${NS}" wait --for=condition=Ready --timeout="${WAIT_TIMEOUT}" "pod/${CLIENT_POD}"

log "creating the demo VM (stopped, opted in)"
kubectl apply -f - <<DEMO_VM
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: ${VM}
  namespace: ${NS}
  labels:
    virtwake.io/enabled: "true"
spec:
  runStrategy: Halted
  template:
    metadata:
      labels:
        kubevirt.io/vm: ${VM}
    spec:
      terminationGracePeriodSeconds: 0
      domain:
        devices:
          disks:
            - name: containerdisk
              disk:
                bus: virtio
        resources:
          requests:
            memory: 128Mi
      volumes:
        - name: containerdisk
          containerDisk:
            image: ${DEMO_VM_IMAGE}
DEMO_VM

# --- helpers -------------------------------------------------------------------
# send TYPE ID DATA [SOURCE]: POST a binary-mode CloudEvent to the Broker from
# the client pod; the Broker answers 202 once it has the event.
send() {
  local type="$1" id="$2" data="$3" source="${4:-${SOURCE}}" code
  code="$(kubectl -n "${NS}" exec "${CLIENT_POD}" -- curl -sS -o /dev/null -w '%{http_code}' \
    -X POST "${BROKER_URL}" \
    -H 'Ce-Specversion: 1.0' -H "Ce-Type: ${type}" -H "Ce-Id: ${id}" -H "Ce-Source: ${source}" \
    -H 'Content-Type: application/json' --data "${data}")"
  [[ "${code}" == 202 ]] || fail "Broker answered ${code} to ${type} ${id}"
  log "sent ${type} id=${id}"
}

# has_event TYPE CAUSATIONID: the display's log holds an event with both.
has_event() {
  kubectl -n "${NS}" logs "deploy/${DISPLAY_NAME}" --tail=-1 2>/dev/null \
    | awk -v want_type="type: $1" -v want_cause="causationid: $2" '
        /cloudevents\.Event/ { if (t && c) found = 1; t = 0; c = 0; next }
        { line = $0; sub(/^[ \t]+/, "", line)
          if (line == want_type) t = 1
          if (line == want_cause) c = 1 }
        END { if (t && c) found = 1; exit !found }'
}

# expect_reply TYPE CAUSATIONID: wait for that result event.
expect_reply() {
  local deadline=$((SECONDS + REPLY_TIMEOUT))
  until has_event "$1" "$2"; do
    ((SECONDS < deadline)) || fail "no $1 with causationid $2 within ${REPLY_TIMEOUT}s"
    sleep 3
  done
  log "got $1 for $2"
}

# expect_jsonpath JSONPATH WANT RESOURCE...: poll `kubectl get RESOURCE...`
# until JSONPATH gives WANT.
expect_jsonpath() {
  local path="$1" want="$2" got="" deadline=$((SECONDS + 120))
  shift 2
  while ((SECONDS < deadline)); do
    got="$(kubectl -n "${NS}" get "$@" -o jsonpath="${path}" 2>/dev/null || true)"
    if [[ "${got}" == "${want}" ]]; then
      log "$* ${path} = ${want}"
      return 0
    fi
    sleep 2
  done
  fail "$* ${path}: want '${want}', got '${got}'"
}

vmi_uid() { kubectl -n "${NS}" get vmi "${VM}" -o jsonpath='{.metadata.uid}' 2>/dev/null || true; }
WAIT='"wait":{"timeoutSeconds":240}'

# --- the commands --------------------------------------------------------------
send io.virtwake.vm.start e2e-start-1 "{\"name\":\"${VM}\",${WAIT}}"
expect_reply io.virtwake.vm.start.completed e2e-start-1
expect_jsonpath '{.status.printableStatus}' Running vm "${VM}"

send io.virtwake.vm.start e2e-start-2 "{\"name\":\"${VM}\"}"
expect_reply io.virtwake.vm.start.completed e2e-start-2 # AlreadyInState

send io.virtwake.vm.pause e2e-pause-1 "{\"name\":\"${VM}\",${WAIT}}"
expect_reply io.virtwake.vm.pause.completed e2e-pause-1
expect_jsonpath '{.status.printableStatus}' Paused vm "${VM}"

send io.virtwake.vm.unpause e2e-unpause-1 "{\"name\":\"${VM}\",${WAIT}}"
expect_reply io.virtwake.vm.unpause.completed e2e-unpause-1
expect_jsonpath '{.status.printableStatus}' Running vm "${VM}"

uid_before="$(vmi_uid)"
send io.virtwake.vm.restart e2e-restart-1 "{\"name\":\"${VM}\",${WAIT}}"
expect_reply io.virtwake.vm.restart.completed e2e-restart-1
uid_after="$(vmi_uid)"
[[ -n "${uid_after}" && "${uid_after}" != "${uid_before}" ]] \
  || fail "restart: VMI uid did not change (${uid_before} -> ${uid_after})"

send io.virtwake.vm.activity e2e-activity-1 "{\"name\":\"${VM}\"}"
expect_reply io.virtwake.vm.activity.completed e2e-activity-1
[[ -n "$(kubectl -n "${NS}" get vm "${VM}" -o jsonpath='{.metadata.annotations.virtwake\.io/last-activity}')" ]] \
  || fail "activity: no virtwake.io/last-activity annotation"

send io.virtwake.vm.stop e2e-stop-1 "{\"name\":\"${VM}\",${WAIT}}"
expect_reply io.virtwake.vm.stop.completed e2e-stop-1
expect_jsonpath '{.status.printableStatus}' Stopped vm "${VM}"

# The demo VM has only a containerDisk: the snapshot holds its spec, no volumes,
# so no CSI snapshot class is needed.
send io.virtwake.vm.snapshot e2e-snapshot-1 "{\"name\":\"${VM}\",\"snapshotName\":\"${VM}-e2e\",${WAIT}}"
expect_reply io.virtwake.vm.snapshot.completed e2e-snapshot-1
expect_jsonpath '{.status.readyToUse}' true vmsnapshot "${VM}-e2e"

send io.virtwake.vm.restore e2e-restore-1 "{\"name\":\"${VM}\",\"snapshotName\":\"${VM}-e2e\",${WAIT}}"
expect_reply io.virtwake.vm.restore.completed e2e-restore-1
expect_jsonpath "{.items[?(@.spec.target.name==\"${VM}\")].status.complete}" true vmrestore

# A command the schema rejects: 400, not retried, so it lands in the dead-letter sink.
send io.virtwake.vm.start e2e-invalid-1 '{"name":"Not/A/Name"}'
deadline=$((SECONDS + 120))
until kubectl -n "${NS}" logs -l serving.knative.dev/service=virtwake-deadletter -c virtwake --tail=-1 2>/dev/null \
  | grep -q 'e2e-invalid-1'; do
  ((SECONDS < deadline)) || fail "dead-letter sink did not log e2e-invalid-1"
  sleep 3
done
log "dead-letter sink logged e2e-invalid-1"

# The reaper: start the VM, let it sit idle past a 1 minute timeout, then send
# the tick the PingSource would send (it only fires every 5 minutes).
send io.virtwake.vm.start e2e-start-3 "{\"name\":\"${VM}\",${WAIT}}"
expect_reply io.virtwake.vm.start.completed e2e-start-3
kubectl -n "${NS}" annotate vm "${VM}" --overwrite virtwake.io/idle-timeout=1m
log "letting the VM idle for 75 s"
sleep 75
send dev.knative.sources.ping e2e-reap-1 '{"action":"reap"}' "/apis/v1/namespaces/${NS}/pingsources/virtwake-reaper"
expect_reply io.virtwake.reaper.completed e2e-reap-1
expect_jsonpath '{.status.printableStatus}' Stopped vm "${VM}"

log "PASS: every command answered with its result event and the VM followed"
