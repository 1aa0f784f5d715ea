#!/usr/bin/env bash
# The part of tests/chart/test.sh that needs a cluster (test.sh --server runs it): against the
# API server in $KUBECONFIG,
#
#   1. a server-side dry run (strict field validation) of the chart rendered with the default
#      values and with tests/chart/values/everything.yaml, so every object is one the API
#      server accepts (HTTPRoute only if the cluster serves gateway.networking.k8s.io);
#   2. a real `helm install`, `helm upgrade` and `helm uninstall` in a throwaway namespace: the
#      generated master key, admin token and passwords survive the upgrade (lookup), and the
#      Secret survives the uninstall (helm.sh/resource-policy: keep).
#
# No pod has to start (the images need not exist), so a control plane alone is enough.
#
#   tests/chart/server.sh HELM WORKDIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

HELM=$1
WORK=$2
CHART=$HUDDLE_ROOT/charts/huddle
TESTS=$HUDDLE_ROOT/tests/chart
KUBECTL=$HUDDLE_BIN/kubernetes-$KUBERNETES_VERSION/kubectl
[ -n "${KUBECONFIG:-}" ] || die "KUBECONFIG is not set: run inside the test cluster (tests/cluster/cluster.sh exec -- tests/chart/test.sh --server)"
"$KUBECTL" get --raw /readyz >/dev/null || die "the API server in $KUBECONFIG does not answer"

suffix=$(date +%s)-$$
ns=huddle-chart-$suffix
sessions=huddle-chart-sessions-$suffix
release=chart
cleanup() {
    "$HELM" uninstall "$release" --namespace "$ns" >/dev/null 2>&1 || true
    "$KUBECTL" delete namespace "$ns" "$sessions" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$KUBECTL" create namespace "$ns" >/dev/null
"$KUBECTL" create namespace "$sessions" >/dev/null
# The CRD as `helm install` would install it; applying it again is a no-op.
"$KUBECTL" apply --server-side --field-manager=huddle-chart-test -f "$CHART/crds/sessions.yaml" >/dev/null

# without_kind KIND < manifests: drops the documents of KIND.
without_kind() {
    awk -v kind="$1" '
        function flush() { if (buf != "" && !skip) printf "%s", buf; buf = ""; skip = 0 }
        /^---/ { flush(); buf = $0 "\n"; next }
        $0 == "kind: " kind { skip = 1 }
        { buf = buf $0 "\n" }
        END { flush() }'
}

has_httproute=0
if "$KUBECTL" api-resources --api-group=gateway.networking.k8s.io -o name 2>/dev/null | grep -q '^httproutes\.'; then
    has_httproute=1
fi

for values in default everything; do
    args=(--namespace "$ns" --set "sessions.namespaces={$sessions}")
    [ $values = default ] || args+=(-f "$TESTS/values/$values.yaml")
    "$HELM" template "$release" "$CHART" "${args[@]}" >"$WORK/server-$values.yaml"
    if [ $has_httproute -eq 0 ]; then
        without_kind HTTPRoute <"$WORK/server-$values.yaml" >"$WORK/server-$values.filtered.yaml"
        mv "$WORK/server-$values.filtered.yaml" "$WORK/server-$values.yaml"
    fi
    objects=$("$KUBECTL" apply --dry-run=server --validate=strict -f "$WORK/server-$values.yaml" -o name | wc -l)
    echo "    $values: the API server accepts all $objects objects (server-side dry run)"
done
[ $has_httproute -eq 1 ] || echo "    (HTTPRoute not checked: the cluster does not serve gateway.networking.k8s.io)"

# secret_value KEY: one key of the chart's Secret, decoded.
secret_value() {
    "$KUBECTL" --namespace "$ns" get secret "$release-huddle" -o "jsonpath={.data.$1}" | base64 -d
}

install_args=(--namespace "$ns" --set "sessions.namespaces={$sessions}" --set domain=chart.test.example)
"$HELM" install "$release" "$CHART" "${install_args[@]}" >/dev/null
keys=(token-key admin-token postgres-password redis-password)
declare -A before
for key in "${keys[@]}"; do
    before[$key]=$(secret_value "$key")
    [ -n "${before[$key]}" ] || die "helm install: the Secret has no $key"
done
[ ${#before[token-key]} -ge 32 ] || die "helm install: the generated master key is shorter than 32 characters"
echo "    helm install: Secret $release-huddle generated (${keys[*]})"

# An upgrade that changes something else must keep every generated value.
"$HELM" upgrade "$release" "$CHART" "${install_args[@]}" --set gateway.apiRate=30 >/dev/null
for key in "${keys[@]}"; do
    [ "$(secret_value "$key")" = "${before[$key]}" ] || die "helm upgrade changed the generated $key"
done
url=$(secret_value database-url)
[[ $url == *":${before[postgres-password]}@"* ]] || die "helm upgrade: database-url does not carry the kept password"
echo "    helm upgrade: every generated value kept"

"$HELM" uninstall "$release" --namespace "$ns" >/dev/null
[ "$(secret_value token-key)" = "${before[token-key]}" ] || die "helm uninstall removed the Secret (it should be kept)"
echo "    helm uninstall: Secret kept (helm.sh/resource-policy: keep)"

# A reinstall under the same name adopts the kept Secret and keeps its values.
"$HELM" install "$release" "$CHART" "${install_args[@]}" >/dev/null
[ "$(secret_value token-key)" = "${before[token-key]}" ] || die "a reinstall generated a new master key"
echo "    helm install again: the kept master key is reused"
