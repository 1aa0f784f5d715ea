#!/usr/bin/env bash
# Installs everything Huddle's build and tests need on a fresh Debian machine,
# idempotently: Debian packages, then the Kubernetes, etcd, helm and CoreDNS binaries
# built from the Go module proxy at the versions pinned under tests/tools.
# A second run finds everything in place and takes a second or two.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(
    # build
    build-essential pkg-config cmake git
    # node: containers, pod networking, and the tools kubelet shells out to
    containerd runc containernetworking-plugins iptables iproute2 conntrack
    socat ethtool util-linux mount procps
    # dig: cluster.sh checks that the cluster's DNS answers through its Service
    bind9-dnsutils
    # the agent test image's shell, for its terminals (tests/images/build-images.sh)
    busybox-static
    # the Docker launcher's engine in tests: podman's Docker API service (with
    # conmon; it runs containers with runc on the CNI plugins above)
    podman
    # state stores the gateway talks to
    postgresql redis-server
    # the gateway's proxy benchmark: load generator, and nginx as the reference proxy
    # (Debian 12's nginx-light is only nginx plus an echo module)
    wrk nginx
    # certificates for the test cluster
    openssl ca-certificates curl
    # the browser UI's tests drive Debian's Chromium through playwright-core
    # (never a downloaded browser); the UI itself builds with the machine's
    # Node.js and npm, checked below
    chromium fonts-dejavu-core
)

install_apt_packages() {
    local missing=()
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "    all ${#APT_PACKAGES[@]} Debian packages present"
        return
    fi
    echo "    installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    # nginx is only the proxy benchmark's reference, which starts its own nginx on loopback
    # with a private config; Debian would start and enable a system nginx on port 80. Unless
    # the machine has its own policy-rc.d, one forbids starting nginx during the install, and
    # its service is disabled afterwards.
    local new_nginx=0 policy=/usr/sbin/policy-rc.d own_policy=0
    [[ " ${missing[*]} " != *" nginx "* ]] || new_nginx=1
    if [ $new_nginx -eq 1 ] && [ ! -e $policy ]; then
        # shellcheck disable=SC2016
        printf '#!/bin/sh\ncase " $* " in *" nginx "* | *" nginx.service "*) exit 101 ;; esac\nexit 0\n' |
            $sudo tee $policy >/dev/null
        $sudo chmod 755 $policy
        own_policy=1
        # shellcheck disable=SC2064 # expanded now: the function's locals are gone at exit
        trap "$sudo rm -f $policy" EXIT
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ $own_policy -eq 1 ]; then
        $sudo rm -f $policy
        trap - EXIT
    fi
    if [ $new_nginx -eq 1 ]; then
        if [ -d /run/systemd/system ]; then
            $sudo systemctl disable --now nginx.service >/dev/null 2>&1 || true
        else
            $sudo update-rc.d nginx disable >/dev/null 2>&1 || true
        fi
    fi
}

# bin_name PACKAGE: the name we install a main package's binary under. etcd's
# main package is its server module's root, which go names "server".
bin_name() {
    case $1 in
    go.etcd.io/etcd/server/v3) echo etcd ;;
    *) basename "$1" ;;
    esac
}

# go_tools DIR OUTDIR LDFLAGS PACKAGE...: builds the tool packages pinned by
# DIR/go.mod into OUTDIR, those whose binary is not there yet (a tool added to
# the list later is built alone; the others stay).
go_tools() {
    local dir=$1 out=$2 ldflags=$3
    shift 3
    local pkg missing=()
    for pkg in "$@"; do
        [ -x "$out/$(bin_name "$pkg")" ] || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "    $(basename "$out") present"
        return
    fi
    echo "    building ${missing[*]} -> $out"
    local tmp="$out.partial"
    rm -rf "$tmp"
    mkdir -p "$tmp" "$out"
    # -trimpath and stripped symbols keep the cache small; binaries are moved
    # into place only when all built, so an interrupted build is redone.
    (cd "$HUDDLE_ROOT/tests/tools/$dir" && go build -trimpath -ldflags="-s -w $ldflags" -o "$tmp/" "${missing[@]}")
    if [ -e "$tmp/server" ]; then mv "$tmp/server" "$tmp/etcd"; fi
    mv "$tmp"/* "$out/"
    rmdir "$tmp"
}

stage "install: Debian packages"
install_apt_packages
command -v node >/dev/null && command -v npm >/dev/null ||
    die "Node.js with npm is needed to build the web UI (this kind of machine has it installed)"

# `scripts/run` needs only what builds and runs Huddle on one machine.
if [ "${1:-}" = "--run-only" ]; then
    stage_end
    exit 0
fi

stage "install: Kubernetes $KUBERNETES_VERSION binaries (Go module proxy)"
# Built outside Kubernetes' own make, the binaries would report v0.0.0;
# clients (helm, kube-rs) read the server version, so stamp the real one.
k8s_version_pkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
k8s_minor=${KUBERNETES_VERSION#v1.}
k8s_minor=${k8s_minor%%.*}
k8s_ldflags=""
for pkg in "${k8s_version_pkgs[@]}"; do
    k8s_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
    k8s_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
go_tools kubernetes "$HUDDLE_BIN/kubernetes-$KUBERNETES_VERSION" "$k8s_ldflags" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-proxy \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kubectl

stage "install: etcd $ETCD_VERSION (Go module proxy)"
go_tools etcd "$HUDDLE_BIN/etcd-$ETCD_VERSION" "" go.etcd.io/etcd/server/v3

stage "install: helm $HELM_VERSION (Go module proxy)"
go_tools helm "$HUDDLE_BIN/helm-$HELM_VERSION" "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" helm.sh/helm/v4/cmd/helm

stage "install: CoreDNS $COREDNS_VERSION (Go module proxy)"
# The test cluster's DNS server, with only the plugins it uses (tests/tools/coredns/main.go).
go_tools coredns "$HUDDLE_BIN/coredns-$COREDNS_VERSION" "" huddle.dev/tests/tools/coredns

stage_end
