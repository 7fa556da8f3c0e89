#!/bin/sh
# Import the saved objects (data views, the error search, the dashboard) into Kibana.
# Idempotent: every object has a fixed id and overwrite=true replaces it, so the Job can run on
# every sync and a changed saved-objects.ndjson simply wins. docs/logging.md
set -eu
KIBANA="${KIBANA_URL:-http://kibana:5601}"
DIR="$(dirname "$0")"
WAIT_SECONDS="${WAIT_SECONDS:-5}"

# Kibana 8's /api/status: {"status":{"overall":{"level":"available",...},"core":{...},
# "plugins":{...}}}. Every core service and plugin has its own "level", so only the one inside
# "overall" says Kibana as a whole is available. The image has neither jq nor python: strip the
# whitespace, then match "level" within the overall object (no nested object before it).
until curl -fsS "$KIBANA/api/status" | tr -d ' \t\r\n' \
  | grep -q '"overall":{[^{}]*"level":"available"'; do
  echo "waiting for $KIBANA"
  sleep "$WAIT_SECONDS"
done

answer="$(curl -fsS -X POST "$KIBANA/api/saved_objects/_import?overwrite=true" \
  -H 'kbn-xsrf: true' --form "file=@$DIR/saved-objects.ndjson")"
echo "$answer"
# The import answers 200 even when some objects failed; only "success":true means all went in.
echo "$answer" | grep -q '"success":true'
