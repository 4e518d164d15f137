#!/usr/bin/env bash
# End-to-end test of virtwake on a kind cluster made by scripts/cluster-up.sh:
# build the image, load it into kind, `kubectl apply -k` the manifests in
# knative/ (image overridden, the reaper's PingSource ticking every minute, a
# wake-proxy route to the demo VM), create a demo VM that serves HTTP, subscribe
# an event display to the result events and a second one through a Trigger
# filtered on `vmname`, send every command through the Broker from a pod with
# curl, and check both the VM's state (kubectl) and the result event (display
# logs). Then: the wake proxy starts the stopped VM for an HTTP request, and a
# real PingSource tick makes the reaper stop it once idle. With BUILDER=func the
# image is built by buildpacks and also deployed the `kn func deploy` way into a
# second namespace (RBAC and policy from the same kustomization), where the
# Service must be cluster-local and able to read VMs.
# Everything it created is deleted on exit (KEEP=1 keeps it).
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
VMNAME_DISPLAY=virtwake-e2e-vmname
CLIENT_POD=virtwake-e2e-client
VM=demo
VM_HTTP=demo-http   # the demo VM's Service, behind the wake proxy
FUNC_NS=virtwake-func # BUILDER=func: the kn func deploy path's namespace
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
  kubectl -n "${NS}" logs "deploy/${VMNAME_DISPLAY}" --tail=100 || true
  kubectl -n "${NS}" logs -l serving.knative.dev/service -c virtwake --tail=50 --prefix || true
  if [[ "${BUILDER}" == func ]]; then
    kubectl -n "${FUNC_NS}" get broker,trigger,ksvc,pods -o wide || true
    kubectl -n "${FUNC_NS}" logs -l serving.knative.dev/service -c user-container --tail=50 --prefix || true
  fi
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
  kubectl delete namespace "${FUNC_NS}" --ignore-not-found --timeout=5m || true
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
patches:
  # A real tick every minute instead of every five: the reaper is tested with
  # the PingSource's own events. VMs without virtwake.io/idle-timeout are never
  # reaped (no VIRTWAKE_IDLE_TIMEOUT), so the ticks leave the demo VM alone
  # until the end sets one.
  - target: {kind: PingSource, name: virtwake-reaper}
    patch: |
      - op: replace
        path: /spec/schedule
        value: "* * * * *"
  # The wake proxy's route to the demo VM's HTTP Service, by path: behind
  # Knative the proxy sees its own ksvc host, so the route is a pathPrefix.
  - target: {kind: ConfigMap, name: virtwake-proxy-routes}
    patch: |
      - op: replace
        path: /data/routes.yaml
        value: |
          routes:
            - pathPrefix: /${VM}
              stripPrefix: true
              vm: {namespace: ${NS}, name: ${VM}}
              service: {name: ${VM_HTTP}, port: 8080}
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
# display NAME: an event_display Deployment and its Service.
display() {
  kubectl apply -f - <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $1
  namespace: ${NS}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: $1
  template:
    metadata:
      labels:
        app: $1
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
  name: $1
  namespace: ${NS}
spec:
  selector:
    app: $1
  ports:
    - port: 80
      targetPort: 8080
EOF
}

log "starting the event displays and their Triggers on result events"
display "${DISPLAY_NAME}"
display "${VMNAME_DISPLAY}"
# Result Triggers carry their own dead-letter sink: a result subscriber that
# fails without one would fail the reply, and Knative would then dead-letter the
# command that virtwake ran (knative/README.md).
kubectl apply -f - <<RESULT_TRIGGERS
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
  delivery:
    retry: 1
    backoffPolicy: exponential
    backoffDelay: PT2S
    timeout: PT60S
    deadLetterSink:
      ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: virtwake-deadletter
---
# Every result about this one VM, whatever its type: the extensions vmnamespace
# and vmname are what a Trigger can filter on (it cannot see data).
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata:
  name: ${VMNAME_DISPLAY}
  namespace: ${NS}
spec:
  broker: virtwake
  filters:
    - exact:
        vmnamespace: ${NS}
        vmname: ${VM}
  subscriber:
    ref:
      apiVersion: v1
      kind: Service
      name: ${VMNAME_DISPLAY}
  delivery:
    retry: 1
    backoffPolicy: exponential
    backoffDelay: PT2S
    timeout: PT60S
    deadLetterSink:
      ref:
        apiVersion: serving.knative.dev/v1
        kind: Service
        name: virtwake-deadletter
RESULT_TRIGGERS
for d in "${DISPLAY_NAME}" "${VMNAME_DISPLAY}"; do
  kubectl -n "${NS}" rollout status "deploy/${d}" --timeout="${WAIT_TIMEOUT}"
  kubectl -n "${NS}" wait --for=condition=Ready --timeout="${WAIT_TIMEOUT}" "trigger/${d}"
done

kubectl -n "${NS}" run "${CLIENT_POD}" --image="${CURL_IMAGE}" --restart=Never --command -- sleep 3600
kubectl -n "${NS}" wait --for=condition=Ready --timeout="${WAIT_TIMEOUT}" "pod/${CLIENT_POD}"

log "creating the demo VM (stopped, opted in, serving HTTP on 8080) and its Service"
kubectl apply -f - <<DEMO_HTTP
apiVersion: v1
kind: Service
metadata:
  name: ${VM_HTTP}
  namespace: ${NS}
spec:
  selector:
    kubevirt.io/vm: ${VM}
  ports:
    - name: http
      port: 8080
      targetPort: 8080
DEMO_HTTP
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
            - name: cloudinit
              disk:
                bus: virtio
        resources:
          requests:
            memory: 128Mi
      volumes:
        - name: containerdisk
          containerDisk:
            image: ${DEMO_VM_IMAGE}
        # CirrOS runs a user-data script that starts with #!; busybox nc answers
        # one request per loop, which is all the wake-proxy check needs.
        - name: cloudinit
          cloudInitNoCloud:
            userData: |
              #!/bin/sh
              while true; do
                printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n\r\nhello virtwake\n' | nc -l -p 8080
              done >/dev/null 2>&1 &
DEMO_VM

# --- helpers -------------------------------------------------------------------
# send TYPE ID DATA [SOURCE]: POST a binary-mode CloudEvent to the Broker from
# the client pod. On InMemoryChannel the Broker answers 202 only when every
# Trigger's delivery has ended (a `wait` included), so curl has no --max-time.
send() {
  local type="$1" id="$2" data="$3" source="${4:-${SOURCE}}" code
  code="$(kubectl -n "${NS}" exec "${CLIENT_POD}" -- curl -sS -o /dev/null -w '%{http_code}' \
    -X POST "${BROKER_URL}" \
    -H 'Ce-Specversion: 1.0' -H "Ce-Type: ${type}" -H "Ce-Id: ${id}" -H "Ce-Source: ${source}" \
    -H 'Content-Type: application/json' --data "${data}")"
  [[ "${code}" == 202 ]] || fail "Broker answered ${code} to ${type} ${id}"
  log "sent ${type} id=${id}"
}

# has_event TYPE CAUSATIONID [DISPLAY]: the display's log holds an event with both.
has_event() {
  kubectl -n "${NS}" logs "deploy/${3:-${DISPLAY_NAME}}" --tail=-1 2>/dev/null \
    | awk -v want_type="type: $1" -v want_cause="causationid: $2" '
        /cloudevents\.Event/ { if (t && c) found = 1; t = 0; c = 0; next }
        { line = $0; sub(/^[ \t]+/, "", line)
          if (line == want_type) t = 1
          if (line == want_cause) c = 1 }
        END { if (t && c) found = 1; exit !found }'
}

# count_type TYPE: how many events of TYPE the display has logged.
count_type() {
  kubectl -n "${NS}" logs "deploy/${DISPLAY_NAME}" --tail=-1 2>/dev/null \
    | awk -v want="type: $1" '{ line = $0; sub(/^[ \t]+/, "", line) } line == want { n++ } END { print n + 0 }'
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
# The same result through the Trigger filtered on vmnamespace/vmname.
has_event io.virtwake.vm.start.completed e2e-start-1 "${VMNAME_DISPLAY}" \
  || fail "the vmname-filtered Trigger did not deliver start.completed for e2e-start-1"
# A command about another VM: its result (failed/NotFound) reaches the first display, not the filtered one.
send io.virtwake.vm.start e2e-ghost-1 '{"name":"ghost"}'
expect_reply io.virtwake.vm.start.failed e2e-ghost-1
! has_event io.virtwake.vm.start.failed e2e-ghost-1 "${VMNAME_DISPLAY}" \
  || fail "the vmname-filtered Trigger let through a result about VM ghost"

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

# The wake proxy: the VM is stopped (after the restore); an HTTP request through
# the proxy's in-cluster address starts it, waits for its Service's endpoint and
# is answered by the VM.
expect_jsonpath '{.status.printableStatus}' Stopped vm "${VM}"
PROXY_URL="$(kubectl -n "${NS}" get ksvc virtwake-wake-proxy -o jsonpath='{.status.address.url}')"
[[ -n "${PROXY_URL}" ]] || fail "ksvc virtwake-wake-proxy has no address"
log "GET ${PROXY_URL}/${VM}/ through the wake proxy (the VM boots meanwhile)"
answer="$(kubectl -n "${NS}" exec "${CLIENT_POD}" -- curl -sS --max-time 290 "${PROXY_URL}/${VM}/" || true)"
[[ "${answer}" == "hello virtwake" ]] || fail "wake proxy: want 'hello virtwake' from the VM, got '${answer}'"
expect_jsonpath '{.status.printableStatus}' Running vm "${VM}"
[[ -n "$(kubectl -n "${NS}" get vm "${VM}" -o jsonpath='{.metadata.annotations.virtwake\.io/last-activity}')" ]] \
  || fail "wake proxy: the request was not recorded as activity"

# The reaper, on the PingSource's own ticks (every minute here): give the VM a
# 1 minute idle timeout and wait until a tick's reaper run stops it.
reaps_before="$(count_type io.virtwake.reaper.completed)"
kubectl -n "${NS}" annotate vm "${VM}" --overwrite virtwake.io/idle-timeout=1m
log "waiting for a PingSource tick to reap the idle VM"
deadline=$((SECONDS + 300))
until [[ "$(kubectl -n "${NS}" get vm "${VM}" -o jsonpath='{.status.printableStatus}')" == Stopped ]]; do
  ((SECONDS < deadline)) || fail "reaper: the VM was not stopped within 300 s of PingSource ticks"
  sleep 5
done
(("$(count_type io.virtwake.reaper.completed)" > reaps_before)) \
  || fail "reaper: the VM stopped but no io.virtwake.reaper.completed event was seen"
log "a PingSource tick reaped the idle VM"

# BUILDER=func: the kn func deploy path, in its own namespace. Its prerequisites
# come from the same kustomization (labelled virtwake.io/kn-func=prerequisite),
# moved to FUNC_NS by an overlay: the RoleBinding must follow.
if [[ "${BUILDER}" == func ]]; then
  log "deploying the kn func path into ${FUNC_NS}"
  mkdir -p "${WORK}/func-overlay" "${WORK}/func-src"
  cat >"${WORK}/func-overlay/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: ${FUNC_NS}
resources:
  - ../base
EOF
  kubectl apply -k "${WORK}/func-overlay" -l virtwake.io/kn-func=prerequisite
  kubectl apply -n "${FUNC_NS}" -f - <<EOF
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: virtwake
spec:
  delivery: {retry: 1, backoffPolicy: exponential, backoffDelay: PT2S, timeout: PT300S}
EOF
  # func writes what it deployed back into func.yaml: deploy from a copy.
  cp "${ROOT}/func.yaml" "${WORK}/func-src/func.yaml"
  # shellcheck disable=SC2086 # FUNC_CLI may be two words ("kn func")
  ${FUNC_CLI} deploy --path "${WORK}/func-src" --namespace "${FUNC_NS}" --image "${IMAGE}" --build=false --push=false
  kubectl -n "${FUNC_NS}" wait --for=condition=Ready --timeout="${WAIT_TIMEOUT}" ksvc/virtwake
  func_url="$(kubectl -n "${FUNC_NS}" get ksvc virtwake -o jsonpath='{.status.url}')"
  [[ "${func_url}" == *.svc.cluster.local ]] || fail "kn func path: ksvc virtwake is public (${func_url})"
  # A start for a VM that does not exist there: the answer is failed/NotFound,
  # which needs a working `get` on VMs in FUNC_NS (a 403 would be a 503).
  reply_type="$(kubectl -n "${NS}" exec "${CLIENT_POD}" -- curl -sS -o /dev/null -D - -X POST "${func_url}" \
    -H 'Ce-Specversion: 1.0' -H 'Ce-Type: io.virtwake.vm.start' -H 'Ce-Id: e2e-func-1' -H "Ce-Source: ${SOURCE}" \
    -H 'Content-Type: application/json' --data '{"name":"ghost"}' | tr -d '\r' | awk -F': ' 'tolower($1) == "ce-type" { print $2 }')"
  [[ "${reply_type}" == io.virtwake.vm.start.failed ]] \
    || fail "kn func path: want io.virtwake.vm.start.failed (NotFound) for ghost, got '${reply_type}'"
  log "kn func path: cluster-local, RBAC works in ${FUNC_NS}"
fi

log "PASS: every command answered with its result event and the VM followed; the wake proxy woke the VM; a PingSource tick reaped it"
if [[ "${BUILDER}" == func ]]; then log "PASS: the kn func path"; fi
