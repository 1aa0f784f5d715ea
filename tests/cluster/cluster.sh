#!/usr/bin/env bash
# The local test cluster: a real Kubernetes control plane (etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler), a real kubelet
# running pods with containerd and runc, kube-proxy (Service ClusterIPs) and
# CoreDNS (cluster.local names), and PostgreSQL and Redis, all inside a network
# namespace this script creates so that pod traffic never leaves it.
#
#   cluster.sh up      start everything in the background and wait for health
#   cluster.sh down    stop everything and remove every trace (no strays)
#   cluster.sh exec -- CMD...
#                      run CMD inside the cluster's network namespace with the
#                      cluster's environment (KUBECONFIG, database URLs, ...)
#
# State lives in $HUDDLE_CLUSTER_DIR (default /tmp/huddle-cluster). Binaries
# come from scripts/install-deps.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

STATE=${HUDDLE_CLUSTER_DIR:-/tmp/huddle-cluster}
NETNS=${HUDDLE_NETNS:-huddle-test}
NETNS_PATH=/run/netns/$NETNS
K8S_BIN=$HUDDLE_BIN/kubernetes-$KUBERNETES_VERSION
ETCD_BIN=$HUDDLE_BIN/etcd-$ETCD_VERSION
HELM_BIN=$HUDDLE_BIN/helm-$HELM_VERSION
COREDNS_BIN=$HUDDLE_BIN/coredns-$COREDNS_VERSION

# Addresses and ports inside the namespace. The node needs a non-loopback
# address for kubelet and the apiserver to advertise; pods get addresses on a
# CNI bridge. None of these ranges is routed outside the namespace.
# PostgreSQL and Redis get ports of their own, so a client pointed at the
# usual ports never reaches the test instances by accident.
NODE_NAME=huddle-node
NODE_IP=10.200.0.1
POD_SUBNET=10.244.0.0/24
SERVICE_RANGE=10.96.0.0/16
SERVICE_API_IP=10.96.0.1
# The kube-dns Service: kubelet hands pods this nameserver; kube-proxy sends it
# to CoreDNS, a process on the node address like the other components.
CLUSTER_DNS_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local
APISERVER_PORT=6443
ETCD_PORT=2379
KUBE_PROXY_HEALTH_PORT=10256
COREDNS_HEALTH_PORT=18080
COREDNS_READY_PORT=18181
POSTGRES_PORT=15432
REDIS_PORT=16379

CONTAINERD_SOCK=$STATE/containerd/containerd.sock
PAUSE_IMAGE=huddle.local/pause:1

in_netns() {
    nsenter --net="$NETNS_PATH" -- "$@"
}

# start NAME CMD...: runs CMD in the namespace in the background, logging to
# $STATE/logs/NAME.log, and remembers its pid for teardown.
start() {
    local name=$1
    shift
    nsenter --net="$NETNS_PATH" -- "$@" >"$STATE/logs/$name.log" 2>&1 &
    echo "$! $name" >>"$STATE/pids"
}

fail_with_log() {
    local name=$1
    echo "---- last lines of $STATE/logs/$name.log" >&2
    tail -n 40 "$STATE/logs/$name.log" >&2 || true
    exit 1
}

# ---------------------------------------------------------------- network

create_netns() {
    ip netns add "$NETNS"
    in_netns ip link set lo up
    # The node address: kubelet and the apiserver refuse a 127/8 address as
    # the one they advertise. The kernel here has no dummy interfaces, so it
    # sits on lo as a /32.
    in_netns ip addr add "$NODE_IP/32" dev lo
    # Bridged pod traffic must pass iptables for Service/NetworkPolicy rules
    # later; the module setting is per namespace on recent kernels.
    in_netns sysctl -qw net.ipv4.ip_forward=1
    # Service ClusterIPs exist only as kube-proxy's DNAT rules. A pod's packet
    # reaches them by its default route; a process here (the tests) needs a
    # route too, or connect() fails before the rules are consulted. The
    # namespace has no other interface, so the range is routed to lo, from the
    # node address; the DNAT then sends the packet on to the pod.
    in_netns ip route add "$SERVICE_RANGE" dev lo src "$NODE_IP"
}

write_cni_config() {
    mkdir -p "$STATE/cni/net.d" "$STATE/cni/cache"
    cat >"$STATE/cni/net.d/10-huddle-bridge.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "huddle-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# ------------------------------------------------------------ certificates

# cert NAME SUBJECT [SANS]: a P-256 key and a certificate signed by the test CA.
cert() {
    local name=$1 subject=$2 sans=${3:-}
    local ext="$STATE/pki/$name.ext"
    {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=serverAuth,clientAuth"
        [ -z "$sans" ] || echo "subjectAltName=$sans"
    } >"$ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$STATE/pki/$name.key" -subj "$subject" -out "$STATE/pki/$name.csr" 2>/dev/null
    openssl x509 -req -in "$STATE/pki/$name.csr" -CA "$STATE/pki/ca.crt" -CAkey "$STATE/pki/ca.key" \
        -CAcreateserial -days 30 -extfile "$ext" -out "$STATE/pki/$name.crt" 2>/dev/null
}

generate_pki() {
    mkdir -p "$STATE/pki"
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$STATE/pki/ca.key" -out "$STATE/pki/ca.crt" -days 30 \
        -subj "/CN=huddle-test-ca" 2>/dev/null
    cert apiserver "/CN=kube-apiserver" \
        "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$NODE_IP,IP:$SERVICE_API_IP"
    cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
    cert admin "/O=system:masters/CN=huddle-admin"
    cert controller-manager "/CN=system:kube-controller-manager"
    cert scheduler "/CN=system:kube-scheduler"
    cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "DNS:$NODE_NAME,IP:$NODE_IP"
    # The built-in ClusterRoleBinding system:node-proxier grants this user
    # what kube-proxy needs; CoreDNS gets a ClusterRole of its own.
    cert kube-proxy "/CN=system:kube-proxy"
    cert coredns "/CN=huddle:coredns"
    openssl ecparam -name prime256v1 -genkey -noout -out "$STATE/pki/sa.key" 2>/dev/null
    openssl ec -in "$STATE/pki/sa.key" -pubout -out "$STATE/pki/sa.pub" 2>/dev/null
}

# kubeconfig NAME CERT: a kubeconfig authenticating with client cert CERT.
kubeconfig() {
    local name=$1 cred=$2
    cat >"$STATE/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: huddle-test
  cluster:
    certificate-authority: $STATE/pki/ca.crt
    server: https://127.0.0.1:$APISERVER_PORT
users:
- name: $cred
  user:
    client-certificate: $STATE/pki/$cred.crt
    client-key: $STATE/pki/$cred.key
contexts:
- name: huddle-test
  context: {cluster: huddle-test, user: $cred, namespace: default}
current-context: huddle-test
EOF
}

# ---------------------------------------------------------------- services

start_etcd() {
    start etcd "$ETCD_BIN/etcd" \
        --name huddle-test --data-dir "$STATE/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls http://127.0.0.1:2380 \
        --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster huddle-test=http://127.0.0.1:2380 \
        --unsafe-no-fsync --log-level warn
    wait_for "etcd health" 60 in_netns curl -fsS "http://127.0.0.1:$ETCD_PORT/health" || fail_with_log etcd
}

start_apiserver() {
    start kube-apiserver "$K8S_BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address 0.0.0.0 --secure-port "$APISERVER_PORT" \
        --advertise-address "$NODE_IP" \
        --service-cluster-ip-range "$SERVICE_RANGE" \
        --tls-cert-file "$STATE/pki/apiserver.crt" --tls-private-key-file "$STATE/pki/apiserver.key" \
        --client-ca-file "$STATE/pki/ca.crt" \
        --kubelet-client-certificate "$STATE/pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$STATE/pki/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority "$STATE/pki/ca.crt" \
        --kubelet-preferred-address-types InternalIP \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$STATE/pki/sa.pub" \
        --service-account-signing-key-file "$STATE/pki/sa.key" \
        --authorization-mode Node,RBAC \
        --enable-admission-plugins NodeRestriction \
        --profiling=false
    wait_for "kube-apiserver readiness" 120 in_netns curl -fsS --cacert "$STATE/pki/ca.crt" \
        --cert "$STATE/pki/admin.crt" --key "$STATE/pki/admin.key" \
        "https://127.0.0.1:$APISERVER_PORT/readyz" || fail_with_log kube-apiserver
}

start_controller_manager() {
    start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
        --kubeconfig "$STATE/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port 10257 \
        --service-account-private-key-file "$STATE/pki/sa.key" \
        --root-ca-file "$STATE/pki/ca.crt" \
        --cluster-signing-cert-file "$STATE/pki/ca.crt" \
        --cluster-signing-key-file "$STATE/pki/ca.key" \
        --use-service-account-credentials \
        --service-cluster-ip-range "$SERVICE_RANGE" \
        --leader-elect=false
    wait_for "kube-controller-manager health" 60 in_netns curl -fsSk https://127.0.0.1:10257/healthz ||
        fail_with_log kube-controller-manager
}

start_scheduler() {
    start kube-scheduler "$K8S_BIN/kube-scheduler" \
        --kubeconfig "$STATE/scheduler.kubeconfig" \
        --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
        --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port 10259 \
        --leader-elect=false
    wait_for "kube-scheduler health" 60 in_netns curl -fsSk https://127.0.0.1:10259/healthz ||
        fail_with_log kube-scheduler
}

start_containerd() {
    mkdir -p "$STATE/containerd"
    cat >"$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  # Images cannot be pulled here; the sandbox image is built locally and
  # imported before kubelet starts.
  sandbox_image = "$PAUSE_IMAGE"
  # This machine lacks CAP_SYS_RESOURCE, so no process may be given an OOM
  # score below containerd's own (the pause container asks for -998).
  restrict_oom_score_adj = true
  disable_apparmor = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # No systemd here; cgroups v1 (hybrid) is managed through cgroupfs.
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
    start containerd containerd --config "$STATE/containerd/config.toml"
    wait_for "containerd" 60 ctr --address "$CONTAINERD_SOCK" version || fail_with_log containerd
}

import_images() {
    local image
    for image in "$HUDDLE_CACHE"/images/*.tar; do
        ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$image" >/dev/null ||
            die "importing $image into containerd failed"
        echo "    imported $(basename "$image" .tar)"
    done
}

start_kubelet() {
    mkdir -p "$STATE/kubelet" "$STATE/pod-logs"
    cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $STATE/pki/kubelet.crt
tlsPrivateKeyFile: $STATE/pki/kubelet.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
# No systemd here, and the machine runs cgroups v1 in hybrid mode, which
# Kubernetes 1.35 refuses unless told otherwise.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# Pods with dnsPolicy ClusterFirst get the kube-dns Service as their
# nameserver and the cluster domain's search paths, nothing of this machine's
# own resolver setup.
clusterDNS: [$CLUSTER_DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: ""
podLogsDir: $STATE/pod-logs
# A test node on a shared disk: never evict for disk pressure mid-test.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Pod status changes reach the API quickly so tests wait less.
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
EOF
    start kubelet "$K8S_BIN/kubelet" \
        --config "$STATE/kubelet/config.yaml" \
        --kubeconfig "$STATE/kubelet.kubeconfig" \
        --root-dir "$STATE/kubelet" \
        --cert-dir "$STATE/kubelet/pki" \
        --hostname-override "$NODE_NAME" \
        --node-ip "$NODE_IP" \
        --v 1
    wait_for "node $NODE_NAME Ready" 120 node_ready || fail_with_log kubelet
}

node_ready() {
    [ "$(kubectl_admin get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

kubectl_admin() {
    in_netns "$K8S_BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" "$@"
}

# apply_admin: applies the manifests on stdin as the cluster admin.
apply_admin() {
    kubectl_admin apply --server-side --field-manager=huddle-test-cluster -f - >/dev/null
}

start_kube_proxy() {
    mkdir -p "$STATE/kube-proxy"
    # iptables mode, in this namespace's own tables (they go with it). Nothing
    # here may change what the namespace cannot: conntrack table sizes and
    # timeouts are global (0 leaves them alone), and without CAP_SYS_RESOURCE
    # no OOM score below 0.
    cat >"$STATE/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTH_PORT
metricsBindAddress: 127.0.0.1:10249
mode: iptables
clusterCIDR: $POD_SUBNET
detectLocalMode: ClusterCIDR
nodePortAddresses: [$NODE_IP/32]
iptables: {localhostNodePorts: false, syncPeriod: 10s, minSyncPeriod: 0s}
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
oomScoreAdj: 0
EOF
    start kube-proxy "$K8S_BIN/kube-proxy" --config "$STATE/kube-proxy/config.yaml" --v 1
    wait_for "kube-proxy health" 60 in_netns curl -fsS "http://127.0.0.1:$KUBE_PROXY_HEALTH_PORT/healthz" ||
        fail_with_log kube-proxy
    # The proof that Services work from here: the API server through the
    # kubernetes Service's ClusterIP. kube-proxy may report healthy before its
    # first sync, and a connection tried before the rules exist stays
    # untranslated (NAT is decided at its first packet), so each attempt is
    # short and a new connection.
    wait_for "the API server through its ClusterIP $SERVICE_API_IP" 30 in_netns curl -fsS -m 2 \
        --cacert "$STATE/pki/ca.crt" --cert "$STATE/pki/admin.crt" --key "$STATE/pki/admin.key" \
        "https://$SERVICE_API_IP/readyz" || fail_with_log kube-proxy
}

start_coredns() {
    mkdir -p "$STATE/coredns"
    # What CoreDNS may read, and the kube-dns Service in front of it: a
    # ClusterIP without a selector whose one endpoint is CoreDNS on the node
    # address.
    apply_admin <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "huddle:coredns"}
rules:
  - apiGroups: [""]
    resources: [services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "huddle:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "huddle:coredns"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "huddle:coredns"}]
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $CLUSTER_DNS_IP
  ports:
    - {name: dns, port: 53, protocol: UDP, targetPort: 53}
    - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-node
  namespace: kube-system
  labels: {kubernetes.io/service-name: kube-dns, endpointslice.kubernetes.io/managed-by: huddle-test-cluster}
addressType: IPv4
endpoints:
  - addresses: [$NODE_IP]
    conditions: {ready: true}
ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
EOF
    # Only cluster names: the namespace has no way out, so nothing is forwarded.
    cat >"$STATE/coredns/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:$COREDNS_HEALTH_PORT
    ready 127.0.0.1:$COREDNS_READY_PORT
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $STATE/coredns.kubeconfig huddle-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
    start coredns "$COREDNS_BIN/coredns" -conf "$STATE/coredns/Corefile"
    wait_for "CoreDNS ready" 60 in_netns curl -fsS "http://127.0.0.1:$COREDNS_READY_PORT/ready" ||
        fail_with_log coredns
}

# dns_resolves: the kubernetes Service's name resolves to its ClusterIP
# through the kube-dns Service, as it does for a pod.
dns_resolves() {
    [ "$(in_netns dig +short +time=1 +tries=1 "@$CLUSTER_DNS_IP" "kubernetes.default.svc.$CLUSTER_DOMAIN" A)" = "$SERVICE_API_IP" ]
}

start_postgres() {
    local pg
    pg=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    mkdir -p "$STATE/postgres"
    chown postgres: "$STATE/postgres"
    echo "$POSTGRES_PASSWORD" >"$STATE/postgres.pw"
    chown postgres: "$STATE/postgres.pw"
    setpriv --reuid=postgres --regid=postgres --init-groups \
        "$pg/initdb" -D "$STATE/postgres/data" -U huddle --pwfile="$STATE/postgres.pw" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >"$STATE/logs/initdb.log" 2>&1 ||
        fail_with_log initdb
    # Pods (the chart's gateway) reach it on the node address, with the password.
    echo "host all all $POD_SUBNET scram-sha-256" >>"$STATE/postgres/data/pg_hba.conf"
    start postgres setpriv --reuid=postgres --regid=postgres --init-groups \
        "$pg/postgres" -D "$STATE/postgres/data" -k "$STATE/postgres" \
        -c listen_addresses="127.0.0.1,$NODE_IP" -p "$POSTGRES_PORT" \
        -c fsync=off -c synchronous_commit=off -c full_page_writes=off
    wait_for "postgres" 60 in_netns "$pg/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT" || fail_with_log postgres
    in_netns setpriv --reuid=postgres --regid=postgres --init-groups \
        "$pg/createdb" -h "$STATE/postgres" -p "$POSTGRES_PORT" -U huddle huddle
}

start_redis() {
    mkdir -p "$STATE/redis"
    # On the node address too, for pods, so with a password (in a file: not
    # in the process list).
    echo "requirepass $REDIS_PASSWORD" >"$STATE/redis/redis.conf"
    start redis redis-server "$STATE/redis/redis.conf" --bind 127.0.0.1 "$NODE_IP" --port "$REDIS_PORT" \
        --dir "$STATE/redis" --save "" --appendonly no --protected-mode yes
    wait_for "redis" 30 in_netns env REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -p "$REDIS_PORT" ping ||
        fail_with_log redis
}

write_env() {
    cat >"$STATE/env" <<EOF
export HUDDLE_CLUSTER_DIR=$STATE
export HUDDLE_NETNS=$NETNS
export KUBECONFIG=$STATE/admin.kubeconfig
export HUDDLE_TEST_NODE_NAME=$NODE_NAME
export HUDDLE_TEST_NODE_IP=$NODE_IP
export HUDDLE_TEST_CONTAINERD_SOCK=$CONTAINERD_SOCK
export HUDDLE_TEST_DATABASE_URL=postgres://huddle:$POSTGRES_PASSWORD@127.0.0.1:$POSTGRES_PORT/huddle
export HUDDLE_TEST_REDIS_URL=redis://:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT
# The same stores as pods reach them: on the node address.
export HUDDLE_TEST_POD_DATABASE_URL=postgres://huddle:$POSTGRES_PASSWORD@$NODE_IP:$POSTGRES_PORT/huddle
export HUDDLE_TEST_POD_REDIS_URL=redis://:$REDIS_PASSWORD@$NODE_IP:$REDIS_PORT
export HUDDLE_TEST_AGENT_IMAGE=huddle.local/huddle-agent:dev
export HUDDLE_TEST_OPERATOR_IMAGE=huddle.local/huddle-operator:dev
export HUDDLE_TEST_GATEWAY_IMAGE=huddle.local/huddle-gateway:dev
export HUDDLE_TEST_HELM=$HELM_BIN/helm
export HUDDLE_TEST_CLUSTER_DNS=$CLUSTER_DNS_IP
export HUDDLE_TEST_CLUSTER_DOMAIN=$CLUSTER_DOMAIN
export PATH=$K8S_BIN:$HELM_BIN:\$PATH
EOF
}

# ------------------------------------------------------------------ up/down

cmd_up() {
    [ ! -e "$STATE/pids" ] || cmd_down
    [ -x "$K8S_BIN/kube-proxy" ] || die "Kubernetes binaries missing: run scripts/install-deps.sh"
    [ -x "$COREDNS_BIN/coredns" ] || die "CoreDNS missing: run scripts/install-deps.sh"
    rm -rf "$STATE"
    mkdir -p "$STATE/logs"
    : >"$STATE/pids"
    ip netns list | awk '/^cni-/ {print $1}' | sort >"$STATE/cni-netns-before"
    kube_chains >"$STATE/kube-chains-before"

    stage "cluster: network namespace $NETNS, certificates"
    create_netns
    write_cni_config
    generate_pki
    kubeconfig admin admin
    kubeconfig controller-manager controller-manager
    kubeconfig scheduler scheduler
    kubeconfig kubelet kubelet
    kubeconfig kube-proxy kube-proxy
    kubeconfig coredns coredns
    # Throwaway passwords for the stores pods reach (hex: safe in URLs).
    POSTGRES_PASSWORD=$(openssl rand -hex 16)
    REDIS_PASSWORD=$(openssl rand -hex 16)
    stage "cluster: etcd $ETCD_VERSION"
    start_etcd
    stage "cluster: kube-apiserver $KUBERNETES_VERSION"
    start_apiserver
    stage "cluster: kube-controller-manager and kube-scheduler"
    start_controller_manager
    start_scheduler
    stage "cluster: containerd $(containerd --version | awk '{print $3}') + images"
    start_containerd
    import_images
    stage "cluster: CoreDNS $COREDNS_VERSION (kube-dns Service $CLUSTER_DNS_IP)"
    start_coredns
    stage "cluster: kubelet (node $NODE_NAME Ready)"
    start_kubelet
    stage "cluster: kube-proxy (iptables), cluster DNS through it"
    start_kube_proxy
    wait_for "$CLUSTER_DNS_IP to resolve kubernetes.default.svc.$CLUSTER_DOMAIN" 30 dns_resolves ||
        fail_with_log coredns
    stage "cluster: PostgreSQL"
    start_postgres
    stage "cluster: Redis"
    start_redis
    write_env
    stage_end
    echo "    cluster up; environment in $STATE/env"
}

# running PID: the process exists and is not a zombie. Our daemons outlive the
# shell that started them, so their exit is reaped by init, sometimes late.
running() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ $state != Z* ]]
}

# stop_process NAME SIGNAL: signals a process started by `start` and waits
# up to 10 s for it to exit, then kills it.
stop_process() {
    local name=$1 signal=$2 pid
    pid=$(awk -v n="$name" '$2 == n {print $1}' "$STATE/pids" 2>/dev/null)
    [ -n "$pid" ] || return 0
    kill -"$signal" "$pid" 2>/dev/null || return 0
    for _ in $(seq 200); do
        running "$pid" || return 0
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
}

# pids_in_cgroup DIR: every process in a cgroup subtree.
pids_in_cgroup() {
    [ -d "$1" ] || return 0
    find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null
}

# kube_chains: the kube-proxy chains in this network namespace's iptables.
kube_chains() {
    { iptables-save 2>/dev/null || true; } | awk '/^:KUBE-/ {print $1}' | sort
}

cmd_down() {
    [ -d "$STATE" ] || return 0
    # kubelet first, so it restarts nothing we stop.
    stop_process kubelet TERM
    # Containers outlive containerd (their shims are reparented); kill every
    # process in the pod cgroups, then the shims of our containerd.
    local cg pid
    for cg in /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/memory/kubepods /sys/fs/cgroup/cpu/kubepods; do
        for pid in $(pids_in_cgroup "$cg"); do kill -KILL "$pid" 2>/dev/null || true; done
    done
    pkill -KILL -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null || true
    # The rest is throwaway state: no need for graceful shutdowns (the
    # apiserver's takes tens of seconds once etcd is gone). PostgreSQL gets
    # its fast shutdown so no orphaned backend lingers.
    stop_process postgres INT
    local name
    for name in $(awk '{print $2}' "$STATE/pids" 2>/dev/null); do
        stop_process "$name" KILL
    done
    for cg in /sys/fs/cgroup/*/kubepods; do
        [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
    done
    # Mounts kubelet and containerd made under the state dir, deepest first.
    findmnt -rn -o TARGET | { grep -F "$STATE/" || true; } | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    # Pod network namespaces created during this run, then ours.
    if [ -f "$STATE/cni-netns-before" ]; then
        ip netns list | awk '/^cni-/ {print $1}' | sort | comm -13 "$STATE/cni-netns-before" - |
            while read -r ns; do ip netns delete "$ns" 2>/dev/null || true; done
    fi
    ip netns delete "$NETNS" 2>/dev/null || true
    # kube-proxy's rules lived in the namespace's own tables and went with it;
    # none may have reached this machine's.
    if [ -f "$STATE/kube-chains-before" ] && [ "$(kube_chains)" != "$(cat "$STATE/kube-chains-before")" ]; then
        echo "error: kube-proxy chains left in the host's iptables:" >&2
        kube_chains >&2
        rm -rf "$STATE"
        return 1
    fi
    # Every process we started names the state dir in its arguments.
    local stray
    stray=$(pgrep -f -- "$STATE/" || true)
    if [ -n "$stray" ]; then
        echo "error: processes left after teardown, killing them:" >&2
        ps -o pid,args -p "$(echo $stray | tr ' ' ',')" >&2 || true
        kill -KILL $stray 2>/dev/null || true
        rm -rf "$STATE"
        return 1
    fi
    if [ -n "${HUDDLE_ARTIFACTS:-}" ]; then
        mkdir -p "$HUDDLE_ARTIFACTS/cluster-logs"
        cp -r "$STATE/logs/." "$HUDDLE_ARTIFACTS/cluster-logs/" 2>/dev/null || true
    fi
    rm -rf "$STATE"
}

cmd_exec() {
    [ -f "$STATE/env" ] || die "cluster is not up (no $STATE/env)"
    # shellcheck disable=SC1091
    source "$STATE/env"
    exec nsenter --net="$NETNS_PATH" -- "$@"
}

case "${1:-}" in
up) cmd_up ;;
down)
    stage "cluster: teardown"
    cmd_down
    stage_end
    ;;
exec)
    shift
    [ "${1:-}" != "--" ] || shift
    cmd_exec "$@"
    ;;
*)
    echo "usage: $0 up|down|exec -- CMD..." >&2
    exit 2
    ;;
esac
