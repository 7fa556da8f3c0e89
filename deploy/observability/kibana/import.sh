#!/bin/sh
# Import the saved objects (data views, the error search, the dashboard) into Kibana.
# Idempotent: every object has a fixed id and overwrite=true replaces it, so the Job can run on
# every sync and a changed saved-objects.ndjson simply wins. docs/logging.md
set -eu
KIBANA="${KIBANA_URL:-http://kibana:5601}"
DIR="$(dirname "$0")"

until curl -fsS "$KIBANA/api/status" | grep -q '"level":"available"'; do
  echo "waiting for $KIBANA"
  sleep 5
done

answer="$(curl -fsS -X POST "$KIBANA/api/saved_objects/_import?overwrite=true" \
  -H 'kbn-xsrf: true' --form "file=@$DIR/saved-objects.ndjson")"
echo "$answer"
# The import answers 200 even when some objects failed; only "success":true means all went in.
echo "$answer" | grep -q '"success":true'
