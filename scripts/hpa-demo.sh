#!/usr/bin/env bash
# The autoscaling proof on a real cluster: start the in-cluster Locust Job, sample the HPA, the
# Deployment and the pods' CPU every INTERVAL seconds into a CSV, stop the load, wait for the
# scale-down, and render replicas and CPU % over time (with the 70% target) to a PNG.
#
# Needs: a running cluster (minikube with the metrics-server addon) where
#   kubectl apply -k deploy/k8s/overlays/minikube
# has been applied. docs/loadtest.md#hpa-demo has the steps and the expected timeline.
#
# Knobs (environment): NAMESPACE=pleno INTERVAL=15 LOAD_SECONDS=(LOCUST_RUN_TIME + 30)
#   SCALE_DOWN_TIMEOUT=900
#   OUT=var/hpa-demo PYTHON=.venv/bin/python KUBECTL=kubectl
# The load's users, spawn rate and run time are set in one place: loadtest/kustomization.yaml.
set -euo pipefail

# No dirname: the failure path is tested with an empty PATH, so only builtins run before the
# kubectl check.
script_dir=${BASH_SOURCE[0]%/*}
[[ $script_dir == "${BASH_SOURCE[0]}" ]] && script_dir=.
cd "$script_dir/.."

NAMESPACE=${NAMESPACE:-pleno}
INTERVAL=${INTERVAL:-15}
SCALE_DOWN_TIMEOUT=${SCALE_DOWN_TIMEOUT:-900}
OUT=${OUT:-var/hpa-demo}
PYTHON=${PYTHON:-.venv/bin/python}

die() {
    printf 'hpa-demo: %s\n' "$*" >&2
    exit 1
}

if [[ -n ${KUBECTL:-} ]]; then
    read -r -a kubectl_cmd <<<"$KUBECTL"
elif command -v kubectl >/dev/null 2>&1; then
    kubectl_cmd=(kubectl)
elif command -v minikube >/dev/null 2>&1; then
    kubectl_cmd=(minikube kubectl --)
else
    die "neither kubectl nor minikube is on PATH. Install minikube (https://minikube.sigs.k8s.io), then: minikube start --addons=metrics-server"
fi
k() { "${kubectl_cmd[@]}" --request-timeout=10s "$@"; }

k get --raw /readyz >/dev/null 2>&1 ||
    die "no Kubernetes cluster is reachable (context: $(k config current-context 2>/dev/null || echo none); KUBECONFIG=${KUBECONFIG:-~/.kube/config}). Start one: minikube start --addons=metrics-server; then: kubectl apply -k deploy/k8s/overlays/minikube"
k get --raw /apis/metrics.k8s.io/v1beta1 >/dev/null 2>&1 ||
    die "the metrics API (metrics.k8s.io) is not available, so the HPA cannot read CPU. On minikube: minikube addons enable metrics-server; elsewhere see deploy/k8s/components/metrics-server"
k -n "$NAMESPACE" get deployment/pleno hpa/pleno >/dev/null 2>&1 ||
    die "deployment/pleno or hpa/pleno not found in namespace $NAMESPACE: kubectl apply -k deploy/k8s/overlays/minikube"
[[ -x $PYTHON ]] || die "$PYTHON not found (needed to render the chart): make venv"

# The load phase's length comes from LOCUST_RUN_TIME in loadtest/kustomization.yaml (plus time
# for the pod to start), so the run time is written once; the Job stops by itself too.
if [[ -z ${LOAD_SECONDS:-} ]]; then
    LOAD_SECONDS=$("$PYTHON" -m loadtest.run_time) || die "cannot read LOCUST_RUN_TIME from loadtest/kustomization.yaml"
fi

mkdir -p "$OUT/kustomize"
csv=$OUT/samples.csv
png=$OUT/hpa-demo.png
# The load component on its own, in the app's namespace. Paths are relative: kustomize refuses
# absolute ones.
cat >"$OUT/kustomize/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $NAMESPACE
components:
  - $("$PYTHON" -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' deploy/k8s/components/loadtest "$OUT/kustomize")
EOF

echo "elapsed_s,phase,current_replicas,desired_replicas,cpu_percent,ready_replicas,pods_cpu_m" >"$csv"
start=$SECONDS
sample() {
    local phase=$1 hpa ready top pods_m
    hpa=$(k -n "$NAMESPACE" get hpa/pleno -o \
        jsonpath='{.status.currentReplicas},{.status.desiredReplicas},{.status.currentMetrics[0].resource.current.averageUtilization}' \
        2>/dev/null || echo ",,")
    ready=$(k -n "$NAMESPACE" get deployment/pleno -o jsonpath='{.status.readyReplicas}' 2>/dev/null || true)
    # Sum of the api pods' CPU in millicores ("123m" per pod), as metrics-server reports it.
    top=$(k -n "$NAMESPACE" top pods -l app.kubernetes.io/name=pleno,app.kubernetes.io/component=api \
        --no-headers 2>/dev/null || true)
    pods_m=$(awk '{ sub(/m$/, "", $2); total += $2 } END { if (NR) print total }' <<<"$top")
    echo "$((SECONDS - start)),$phase,$hpa,${ready:-0},$pods_m" >>"$csv"
    printf '%4ss %-8s replicas,desired,cpu%%: %-10s ready: %s  pods CPU: %sm\n' \
        "$((SECONDS - start))" "$phase" "$hpa" "${ready:-0}" "${pods_m:-?}"
}

stop_load() {
    k -n "$NAMESPACE" delete job/loadtest --ignore-not-found --wait=false >/dev/null 2>&1 || true
}
render() {
    if [[ $(wc -l <"$csv") -gt 1 ]]; then
        "$PYTHON" -m loadtest.hpa_chart "$csv" "$png" && echo "hpa-demo: chart $png, samples $csv"
    fi
}
trap 'stop_load; render' EXIT

min=$(k -n "$NAMESPACE" get hpa/pleno -o jsonpath='{.spec.minReplicas}')
echo "hpa-demo: baseline"
for _ in 1 2; do sample baseline; sleep "$INTERVAL"; done

echo "hpa-demo: starting the load (loadtest Job; users and spawn rate in loadtest/kustomization.yaml)"
# A Job's pod template is immutable: a leftover from an earlier run has to go first.
k -n "$NAMESPACE" delete job/loadtest --ignore-not-found --wait=true >/dev/null
k apply -k "$OUT/kustomize"
load_start=$SECONDS
while ((SECONDS - load_start < LOAD_SECONDS)); do
    sample load
    status=$(k -n "$NAMESPACE" get job/loadtest -o jsonpath='{.status.succeeded}{.status.failed}' 2>/dev/null || true)
    [[ -n $status ]] && break  # Locust's run time is over
    sleep "$INTERVAL"
done
echo "hpa-demo: Locust's summary:"
k -n "$NAMESPACE" logs job/loadtest --tail=20 2>/dev/null || true
stop_load

echo "hpa-demo: load stopped; waiting for the scale-down to $min replicas (timeout ${SCALE_DOWN_TIMEOUT}s)"
down_start=$SECONDS
while :; do
    sample cooldown
    current=$(k -n "$NAMESPACE" get hpa/pleno -o jsonpath='{.status.currentReplicas}')
    [[ $current == "$min" ]] && break
    ((SECONDS - down_start < SCALE_DOWN_TIMEOUT)) ||
        die "still $current replicas after ${SCALE_DOWN_TIMEOUT}s (see $csv)"
    sleep "$INTERVAL"
done
sample cooldown
echo "hpa-demo: back at $min replicas after $((SECONDS - down_start))s"
