#!/usr/bin/env bash
# Send one virtwake command as a CloudEvent and print the reply.
#
#   scripts/send-event.sh <type> '<json data>' [url]
#   scripts/send-event.sh io.virtwake.vm.start '{"name":"legacy-erp","wait":{"timeoutSeconds":30}}'
#
# Uses `cloudevents send` (cloudevents/conformance), else `kn event send`
# (kn-plugin-event), else curl, whichever is installed. SENDER=curl|kn|cloudevents forces one.
set -euo pipefail

type="${1:?usage: send-event.sh <type> '<json data>' [url]}"
data="${2:-{\}}"
url="${3:-${VIRTWAKE_URL:-http://localhost:8080/}}"
id="${EVENT_ID:-send-$(date +%s)-$$}"
source="${EVENT_SOURCE:-/virtwake/send-event}"

sender="${SENDER:-}"
if [ -z "$sender" ]; then
  if command -v cloudevents >/dev/null 2>&1; then sender=cloudevents
  elif command -v kn >/dev/null 2>&1 && kn event --help >/dev/null 2>&1; then sender=kn
  else sender=curl
  fi
fi

case "$sender" in
  cloudevents)
    exec cloudevents send "$url" --id "$id" --source "$source" --type "$type" \
      --datacontenttype application/json --data "$data" --mode binary -v
    ;;
  kn)
    # kn event send builds data from --field path=value pairs; flatten the JSON object into them.
    mapfile -t fields < <(node -e '
      const walk = (o, p) => Object.entries(o).flatMap(([k, v]) =>
        v !== null && typeof v === "object" ? walk(v, p + k + ".") : [`--field=${p}${k}=${JSON.stringify(v)}`]);
      console.log(walk(JSON.parse(process.argv[1]), "").join("\n"));' "$data")
    exec kn event send --to "$url" --id "$id" --source "$source" --type "$type" "${fields[@]}"
    ;;
  curl)
    exec curl -sS -i -X POST "$url" \
      -H "ce-specversion: 1.0" -H "ce-id: $id" -H "ce-source: $source" -H "ce-type: $type" \
      -H "content-type: application/json" --data-binary "$data"
    ;;
  *)
    echo "send-event.sh: unknown SENDER '$sender' (use cloudevents, kn or curl)" >&2
    exit 2
    ;;
esac
