#!/bin/sh
# Install the ILM policy, then the index template that names it (deploy/observability/elasticsearch).
# Idempotent: PUT creates or replaces, so the Job can run on every sync. docs/logging.md
set -eu
ES="${ELASTICSEARCH_URL:-http://elasticsearch:9200}"
DIR="$(dirname "$0")"

until curl -fsS "$ES/_cluster/health?wait_for_status=yellow&timeout=10s" >/dev/null; do
  echo "waiting for $ES"
  sleep 5
done

put() {
  echo "PUT $1"
  curl -fsS -X PUT "$ES/$1" -H 'Content-Type: application/json' --data-binary "@$DIR/$2"
  echo
}

put _ilm/policy/pleno-logs ilm-policy.json
put _index_template/pleno-logs index-template.json
