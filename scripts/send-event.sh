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
    # kn event send builds data from path=value pairs. `--field` types its value (true/false, then a
    # number, else the text as given, quotes included), so strings go as `--raw-field` (taken as-is)
    # and only numbers and booleans as `--field`. kn cannot express arrays, null, or keys with a dot.
    # NUL-separated, so a string may hold newlines; through a file, so a refusal stops the script.
    fields_file="$(mktemp)"
    # shellcheck disable=SC2016 # the ${...} below are JavaScript's, not the shell's
    if ! node -e '
      const fail = (why) => { console.error(`send-event.sh: kn event send cannot send ${why}; use SENDER=curl`); process.exit(2); };
      const out = [];
      const walk = (o, p) => {
        for (const [k, v] of Object.entries(o)) {
          if (k === "" || k.includes(".") || k.includes("=")) fail(`the key ${JSON.stringify(p + k)}`);
          if (v === null) fail(`null (at ${p + k})`);
          else if (Array.isArray(v)) fail(`an array (at ${p + k})`);
          else if (typeof v === "object") walk(v, p + k + ".");
          else if (typeof v === "string") out.push(`--raw-field=${p}${k}=${v}`);
          else out.push(`--field=${p}${k}=${JSON.stringify(v)}`);
        }
      };
      let data;
      try { data = JSON.parse(process.argv[1]); } catch (e) { fail(`data that is not JSON (${e.message})`); }
      if (data === null || typeof data !== "object" || Array.isArray(data)) fail("data that is not a JSON object");
      walk(data, "");
      process.stdout.write(out.map((f) => f + "\0").join(""));' "$data" >"$fields_file"; then
      rm -f "$fields_file"
      exit 2
    fi
    mapfile -d '' -t fields <"$fields_file"
    rm -f "$fields_file"
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
