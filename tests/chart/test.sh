#!/usr/bin/env bash
# Tests the Helm chart in charts/huddle without a cluster:
#
#   1. `helm lint --strict` with the default values and each file in tests/chart/values/:
#      everything.yaml (every optional part on), external.yaml, single.yaml, test-cluster.yaml;
#   2. `helm template` for each: Helm parses every rendered document as YAML, and this script
#      checks the kinds and counts of objects, the security settings of every pod, RBAC,
#      NetworkPolicy, probes, Ingress/HTTPRoute hosts and which Secrets the pods read, and
#      that NOTES.txt tells the URL to open;
#   3. every value in values.yaml is documented in charts/huddle/README.md
#      (tests/chart/check-values-documented.sh);
#   4. the schema: each bad values file in tests/chart/bad/ (its first line says
#      "# expect: <regex>") and a few --set cases must make `helm template` and `helm lint`
#      fail, with a message matching the regex, which names the offending key.
#
# With --server, it then also uses the cluster in $KUBECONFIG (tests/cluster/cluster.sh exec --
# tests/chart/test.sh --server): a server-side dry run of the rendered objects, and a real
# install, upgrade and uninstall that checks generated keys survive the upgrade and the Secret
# survives the uninstall. Images are not pulled there; no pod has to start.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
export LC_ALL=C

server=0
case "${1:-}" in
"") ;;
--server) server=1 ;;
*) die "usage: $0 [--server]" ;;
esac

HELM=$HUDDLE_BIN/helm-$HELM_VERSION/helm
[ -x "$HELM" ] || die "$HELM missing: run scripts/install-deps.sh"
CHART=$HUDDLE_ROOT/charts/huddle
TESTS=$HUDDLE_ROOT/tests/chart
WORK=$(mktemp -d)
# Helm's own state (repositories, cache) stays out of the user's home.
export HELM_CACHE_HOME=$WORK/helm/cache HELM_CONFIG_HOME=$WORK/helm/config HELM_DATA_HOME=$WORK/helm/data

checks=0
on_exit() {
    local status=$?
    rm -rf "$WORK"
    if [ $status -ne 0 ]; then
        printf '==> FAILED%s\n' "${_stage_name:+: $_stage_name}" >&2
    fi
    exit $status
}
trap on_exit EXIT

fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}
pass() { checks=$((checks + 1)); }

# render NAME [HELM ARGS...]: `helm template` into $WORK/NAME.yaml, release "t" in namespace
# "huddle".
render() {
    local name=$1
    shift
    "$HELM" template t "$CHART" --namespace huddle "$@" >"$WORK/$name.yaml" ||
        fail "helm template $name failed"
    pass
}

# expect_kinds FILE "Kind=N ...": the rendered objects are exactly these kinds and counts.
expect_kinds() {
    local file=$1 expected actual
    expected=$(tr ' ' '\n' <<<"$2" | grep . | sort)
    actual=$(awk '/^kind: /{print $2}' "$file" | sort | uniq -c | awk '{print $2 "=" $1}')
    [ "$actual" = "$expected" ] ||
        fail "$(basename "$file"): kinds differ"$'\n'"expected:"$'\n'"$expected"$'\n'"rendered:"$'\n'"$actual"
    pass
}

# doc FILE KIND NAME: prints one rendered object.
doc() {
    awk -v kind="$2" -v name="$3" '
        /^---/ { if (hit) exit; buf = ""; k = 0; n = 0; next }
        { buf = buf $0 "\n" }
        $0 == "kind: " kind { k = 1 }
        /^  name: / && $2 == name { n = 1 }
        k && n && !hit { hit = 1; printf "%s", buf; next }
        hit { print }
    ' "$1"
}

# has TEXT REGEX WHAT: TEXT has a line matching REGEX.
has() {
    grep -Eq -- "$2" <<<"$1" || fail "$3: no line matching /$2/"
    pass
}
# hasnt TEXT REGEX WHAT
hasnt() {
    if grep -Eq -- "$2" <<<"$1"; then fail "$3: unexpected line matching /$2/"; fi
    pass
}
# count TEXT REGEX N WHAT: exactly N lines of TEXT match REGEX.
count() {
    local got
    got=$(grep -Ec -- "$2" <<<"$1" || true)
    [ "$got" -eq "$3" ] || fail "$4: $got lines match /$2/, expected $3"
    pass
}

# check_pod_security FILE KIND NAME API: the pod template of KIND/NAME runs non-root as 65532
# with RuntimeDefault seccomp, a service-account token only if API is "api", and every
# container with a read-only root, no privilege escalation, no capabilities and resources.
check_pod_security() {
    local file=$1 kind=$2 name=$3 api=$4 text containers
    text=$(doc "$file" "$kind" "$name")
    [ -n "$text" ] || fail "$(basename "$file"): no $kind $name"
    containers=$(awk '/^      containers:/{c=1; next} c && /^      [^ ]/{c=0} c && /^        - name: /{n++} END{print n+0}' <<<"$text")
    [ "$containers" -ge 1 ] || fail "$kind $name: no containers"
    local what="$kind $name"
    count "$text" '^        runAsNonRoot: true$' 1 "$what pod runAsNonRoot"
    count "$text" '^        runAsUser: 65532$' 1 "$what pod runAsUser"
    count "$text" '^          type: RuntimeDefault$' 1 "$what pod seccompProfile"
    count "$text" '^            allowPrivilegeEscalation: false$' "$containers" "$what allowPrivilegeEscalation"
    count "$text" '^            readOnlyRootFilesystem: true$' "$containers" "$what readOnlyRootFilesystem"
    count "$text" '^              - ALL$' "$containers" "$what capabilities drop ALL"
    count "$text" '^          resources:$' "$containers" "$what resources"
    count "$text" '^            requests:$' "$containers" "$what resource requests"
    if [ "$api" = api ]; then
        has "$text" '^      automountServiceAccountToken: true$' "$what token"
    else
        has "$text" '^      automountServiceAccountToken: false$' "$what token"
    fi
}

# check_session_policy FILE NAMESPACE: the session NetworkPolicy in NAMESPACE selects the
# operator's session pods, admits the gateway, and lets them out to DNS and the internet
# except the private ranges and the metadata address.
check_session_policy() {
    local text
    text=$(doc "$1" NetworkPolicy t-huddle-sessions)
    has "$text" "^  namespace: $2$" "session NetworkPolicy namespace"
    for label in 'app.kubernetes.io/name: huddle' 'app.kubernetes.io/component: workspace-agent' \
        'app.kubernetes.io/managed-by: huddle-operator'; do
        has "$text" "^      $label$" "session NetworkPolicy selects $label"
    done
    has "$text" '^              app.kubernetes.io/component: gateway$' "session NetworkPolicy admits the gateway"
    has "$text" '^    - Egress$' "session NetworkPolicy restricts egress"
    has "$text" '^          port: 53$' "session NetworkPolicy allows DNS"
    has "$text" '^            cidr: 0.0.0.0/0$' "session NetworkPolicy allows the internet"
    for cidr in 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 169.254.169.254/32; do
        has "$text" "^              - ${cidr//./\\.}$" "session NetworkPolicy denies $cidr"
    done
}

stage "chart: helm lint --strict (default values and tests/chart/values/*.yaml)"
"$HELM" lint --strict --quiet "$CHART" || fail "helm lint --strict with the default values"
pass
for values in "$TESTS"/values/*.yaml; do
    "$HELM" lint --strict --quiet "$CHART" -f "$values" || fail "helm lint --strict -f $values"
    echo "    lint ok: $(basename "$values")"
    pass
done

stage "chart: helm template with default values"
render default
f=$WORK/default.yaml
expect_kinds "$f" "Lease=1 Deployment=2 StatefulSet=2 Service=4 PodDisruptionBudget=2 NetworkPolicy=4
    Role=3 RoleBinding=3 ServiceAccount=2 Secret=1"
hasnt "$(cat "$f")" '^kind: Cluster(Role|RoleBinding)$' "default: cluster-scoped RBAC"
check_pod_security "$f" Deployment t-huddle-gateway api
check_pod_security "$f" Deployment t-huddle-operator api
check_pod_security "$f" StatefulSet t-huddle-postgresql none
check_pod_security "$f" StatefulSet t-huddle-redis none
gateway=$(doc "$f" Deployment t-huddle-gateway)
has "$gateway" '^  replicas: 2$' "gateway replicas"
has "$gateway" 'preferredDuringSchedulingIgnoredDuringExecution' "gateway anti-affinity"
count "$gateway" '^              path: /healthz$' 3 "gateway startup, readiness and liveness probes"
has "$gateway" '^                seconds: 5$' "gateway preStop sleep"
has "$gateway" '^      terminationGracePeriodSeconds: 30$' "gateway termination grace"
has "$gateway" '^              value: kubernetes$' "gateway runtime"
has "$gateway" '^              value: "https://huddle.example.com"$' "gateway public URL"
has "$gateway" '^            - name: HUDDLE_REDIS_URL$' "gateway Redis URL"
operator=$(doc "$f" Deployment t-huddle-operator)
has "$operator" '^            - name: HUDDLE_LEASE_NAME$' "operator lease name"
has "$operator" '^              value: "huddle"$' "operator watches the release namespace"
has "$operator" '/internal/snapshots/\{namespace\}/\{name\}"$' "operator restore URL"
lease=$(doc "$f" Role t-huddle-operator-leader-election)
has "$lease" 'coordination.k8s.io' "operator lease Role"
gateway_role=$(doc "$f" Role t-huddle-gateway)
has "$gateway_role" 'verbs: \["get", "create", "patch", "delete"\]' "gateway Role on sessions"
check_session_policy "$f" huddle
secret=$(doc "$f" Secret t-huddle)
for key in token-key admin-token postgres-password database-url redis-password redis-url; do
    has "$secret" "^  $key: \"[A-Za-z0-9+/=]+\"$" "chart Secret key $key"
done
has "$secret" 'helm.sh/resource-policy: keep' "chart Secret kept on uninstall"
notes=$("$HELM" install t "$CHART" --namespace huddle --dry-run=client | sed -n '/^NOTES:/,$p')
has "$notes" '^Open https://huddle.example.com/ and click "New session".$' "NOTES: the URL to open"
has "$notes" "get secret t-huddle -o jsonpath='\{.data.admin-token\}'" "NOTES: the admin token"

stage "chart: helm template with everything.yaml (ingress, httpRoute, bundled postgres/redis/turn)"
render everything -f "$TESTS/values/everything.yaml"
f=$WORK/everything.yaml
expect_kinds "$f" "Lease=1 Deployment=3 StatefulSet=2 Service=5 PodDisruptionBudget=2 NetworkPolicy=5
    Role=3 RoleBinding=3 ServiceAccount=2 Secret=2 Ingress=1 HTTPRoute=1"
hasnt "$(cat "$f")" '^kind: Cluster(Role|RoleBinding)$' "everything: cluster-scoped RBAC"
check_pod_security "$f" Deployment t-huddle-gateway api
check_pod_security "$f" Deployment t-huddle-operator api
check_pod_security "$f" Deployment t-huddle-turn none
check_pod_security "$f" StatefulSet t-huddle-postgresql none
check_pod_security "$f" StatefulSet t-huddle-redis none
ingress=$(doc "$f" Ingress t-huddle-gateway)
has "$ingress" '^    - host: "huddle.test.example"$' "Ingress host"
has "$ingress" '^    - host: "\*.huddle.test.example"$' "Ingress wildcard host"
has "$ingress" '^      secretName: t-huddle-tls$' "Ingress TLS"
route=$(doc "$f" HTTPRoute t-huddle-gateway)
has "$route" '^apiVersion: gateway.networking.k8s.io/v1$' "HTTPRoute API version"
has "$route" '^    - "\*.huddle.test.example"$' "HTTPRoute wildcard hostname"
has "$(doc "$f" Deployment t-huddle-gateway)" 'requiredDuringSchedulingIgnoredDuringExecution' "hard anti-affinity"
turn_service=$(doc "$f" Service t-huddle-turn)
count "$turn_service" '^      protocol: UDP$' 11 "TURN Service: listening port and 10 relay ports over UDP"
for kind in Role RoleBinding; do
    has "$(doc "$f" $kind t-huddle-operator)" '^  namespace: huddle-sessions$' "operator $kind in the session namespace"
    has "$(doc "$f" $kind t-huddle-gateway)" '^  namespace: huddle-sessions$' "gateway $kind in the session namespace"
done
check_session_policy "$f" huddle-sessions
has "$(doc "$f" NetworkPolicy t-huddle-sessions)" '^            cidr: ::/0$' "IPv6 egress rule"
has "$(doc "$f" NetworkPolicy t-huddle-turn)" '^          endPort: 49161$' "TURN relay range in its NetworkPolicy"
has "$(doc "$f" Secret t-huddle)" '^  turn-secret: ' "TURN secret"
has "$(doc "$f" Secret t-huddle-ice-servers)" '^  ice-servers.json: ' "ICE servers"
has "$(doc "$f" Deployment t-huddle-operator)" '^            - name: HUDDLE_ICE_SERVERS$' "the operator hands ICE servers to sessions"
has "$(doc "$f" Deployment t-huddle-operator)" '^            - name: HUDDLE_TURN_SECRET$' "the operator mints TURN credentials"

stage "chart: helm template with external.yaml, single.yaml and test-cluster.yaml"
render external -f "$TESTS/values/external.yaml"
f=$WORK/external.yaml
expect_kinds "$f" "Lease=1 Deployment=2 Service=2 PodDisruptionBudget=1 NetworkPolicy=1
    Role=3 RoleBinding=3 ServiceAccount=2 Secret=1"
gateway=$(doc "$f" Deployment hd-gateway)
has "$gateway" '^                  name: huddle-keys$' "gateway reads auth.existingSecret"
has "$gateway" '^                  name: huddle-database$' "gateway reads externalDatabase.existingSecret"
has "$gateway" '^                  key: url$' "gateway reads externalDatabase.existingSecretKey"
secret=$(doc "$f" Secret hd)
has "$secret" '^  redis-url: ' "external Redis URL in the chart Secret"
count "$secret" '^  [a-z-]+: "' 1 "only the Redis URL in the chart Secret"
render single -f "$TESTS/values/single.yaml"
f=$WORK/single.yaml
expect_kinds "$f" "Lease=1 Deployment=2 Service=2 Role=3 RoleBinding=3 ServiceAccount=2 Secret=1"
gateway=$(doc "$f" Deployment t-huddle-gateway)
hasnt "$gateway" 'HUDDLE_REDIS_URL' "single gateway without Redis"
has "$gateway" '^              value: "http://localhost:8000"$' "public URL with a port"
render test-cluster -f "$TESTS/values/test-cluster.yaml"
f=$WORK/test-cluster.yaml
for name in gateway operator; do
    text=$(doc "$f" Deployment "t-huddle-$name")
    has "$text" "^          image: huddle.local/huddle-$name:dev$" "test-cluster $name image"
    has "$text" '^          imagePullPolicy: Never$' "test-cluster $name pull policy"
    has "$text" '^            - name: KUBERNETES_SERVICE_HOST$' "test-cluster $name API server address"
done

stage "chart: every value documented in charts/huddle/README.md"
bash "$TESTS/check-values-documented.sh" "$HELM"
pass

stage "chart: schema and checks reject bad values with a message naming the key"
# must_fail WHAT EXPECT LINT ARGS...: `helm template` fails with a message matching EXPECT,
# and unless LINT is "nolint", `helm lint --strict` fails too. (helm lint only logs the
# chart's own `fail` calls, so checks a schema cannot express fail at template time only.)
must_fail() {
    local what=$1 expect=$2 lint=$3 out
    shift 3
    if out=$("$HELM" template t "$CHART" --namespace huddle "$@" 2>&1); then
        fail "$what: helm template accepted it"
    fi
    grep -Eq -- "$expect" <<<"$out" ||
        fail "$what: helm template failed, but not with /$expect/:"$'\n'"$out"
    if [ "$lint" != nolint ] && "$HELM" lint --strict "$CHART" "$@" >/dev/null 2>&1; then
        fail "$what: helm lint accepted it"
    fi
    pass
    printf '    rejected %-32s %s\n' "$what" "$(grep -Eo -- "$expect" <<<"$out" | head -1)"
}
bad=0
for file in "$TESTS"/bad/*.yaml; do
    expect=$(sed -n '1s/^# expect: //p' "$file")
    [ -n "$expect" ] || fail "$file: the first line must be '# expect: <regex>'"
    lint=lint
    if grep -q '^# checked-by: template' "$file"; then lint=nolint; fi
    must_fail "$(basename "$file" .yaml)" "$expect" "$lint" -f "$file"
    bad=$((bad + 1))
done
must_fail "--set-string replicaCount" '/gateway/replicaCount.*got string, want integer' lint \
    --set-string gateway.replicaCount=2
must_fail "--set publicPort out of range" '/publicPort.*maximum: got 70,000, want 65,535' lint \
    --set publicPort=70000
must_fail "--set bad namespace name" '/sessions/namespaces/0.*does not match pattern' lint \
    --set 'sessions.namespaces={Team_A}'
[ $bad -ge 6 ] || fail "only $bad bad values files in $TESTS/bad"

if [ $server -eq 1 ]; then
    stage "chart: server-side dry run and install/upgrade/uninstall on the cluster in \$KUBECONFIG"
    bash "$TESTS/server.sh" "$HELM" "$WORK"
    pass
fi

stage_end
echo "==> chart tests passed: $checks checks"
