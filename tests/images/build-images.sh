#!/usr/bin/env bash
# Builds the container images the test cluster runs, without a registry or a
# Docker engine: each image is a root filesystem assembled from binaries built
# on this machine (FROM scratch), packed as an OCI image layout archive in
# $HUDDLE_CACHE/images/NAME.tar for `ctr images import`.
#
#   pause            the pod sandbox (tests/images/pause/pause.c, static)
#   huddle-agent     the workspace agent, the browser UI it serves and a
#                    shell for its terminals (workspace-agent/Dockerfile is
#                    the equivalent build for users with a registry)
#   huddle-operator  the operator (operator/Dockerfile)
#   huddle-gateway   the gateway and the landing page it serves from the UI
#                    build (gateway/Dockerfile)
#
# The operator and gateway images are what the Helm chart runs in the test
# cluster (tests/chart/values/e2e.yaml, tests/e2e/tests/helm.rs).
#
# Expects `cargo build --workspace --bins` and scripts/build-web.sh to have run;
# HUDDLE_CARGO_PROFILE_DIR picks the profile's output folder (default: debug,
# what the tests build). Binaries are stripped in the images: a debug build's
# symbols are most of its size.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"

OUT=$HUDDLE_CACHE/images
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

# UID/GID of the unprivileged user every Huddle image runs as.
NONROOT=65532

sha256() { sha256sum "$1" | awk '{print $1}'; }

# blob FILE: moves FILE into the layout's blob store, prints its digest.
blob() {
    local digest
    digest=$(sha256 "$1")
    mv "$1" "$LAYOUT/blobs/sha256/$digest"
    echo "$digest"
}

# oci_image NAME REF ROOTFS ENTRYPOINT_JSON ENV_JSON EXPOSED_JSON
oci_image() {
    local name=$1 ref=$2 rootfs=$3 entrypoint=$4 env=$5 exposed=$6
    LAYOUT=$WORK/$name-layout
    mkdir -p "$LAYOUT/blobs/sha256"
    # A reproducible layer: fixed order, owners and timestamps.
    tar --sort=name --numeric-owner --mtime=@0 --format=posix \
        --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
        -C "$rootfs" -cf "$WORK/layer.tar" .
    local layer_digest layer_size
    layer_digest=$(blob "$WORK/layer.tar")
    layer_size=$(stat -c %s "$LAYOUT/blobs/sha256/$layer_digest")

    cat >"$WORK/config.json" <<EOF
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",
 "config":{"User":"$NONROOT:$NONROOT","Entrypoint":$entrypoint,"Env":$env,"ExposedPorts":$exposed,"WorkingDir":"/"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$layer_digest"]},
 "history":[{"created":"1970-01-01T00:00:00Z","created_by":"tests/images/build-images.sh"}]}
EOF
    local config_digest config_size
    config_size=$(stat -c %s "$WORK/config.json")
    config_digest=$(blob "$WORK/config.json")

    cat >"$WORK/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config_digest","size":$config_size},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$layer_digest","size":$layer_size}]}
EOF
    local manifest_digest manifest_size
    manifest_size=$(stat -c %s "$WORK/manifest.json")
    manifest_digest=$(blob "$WORK/manifest.json")

    cat >"$LAYOUT/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
 "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest_digest","size":$manifest_size,
   "platform":{"architecture":"amd64","os":"linux"},
   "annotations":{"io.containerd.image.name":"$ref","org.opencontainers.image.ref.name":"${ref##*:}"}}]}
EOF
    echo '{"imageLayoutVersion":"1.0.0"}' >"$LAYOUT/oci-layout"
    tar --sort=name --mtime=@0 -C "$LAYOUT" -cf "$OUT/$name.tar.partial" .
    mv "$OUT/$name.tar.partial" "$OUT/$name.tar"
    echo "    $ref  $(du -h "$OUT/$name.tar" | cut -f1)  sha256:${manifest_digest:0:12}"
}

# base_rootfs DIR: the few files every image needs: a non-root user, /tmp.
base_rootfs() {
    mkdir -p "$1/etc" "$1/tmp"
    chmod 1777 "$1/tmp"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n' \
        $NONROOT $NONROOT >"$1/etc/passwd"
    printf 'root:x:0:\nnonroot:x:%d:\n' $NONROOT >"$1/etc/group"
    mkdir -p "$1/home/nonroot"
    chown $NONROOT:$NONROOT "$1/home/nonroot"
}

# add_binary ROOTFS BINARY DEST: copies a dynamically linked binary, stripped,
# and the shared libraries it loads (including the dynamic loader) into ROOTFS.
add_binary() {
    local rootfs=$1 bin=$2 dest=$3
    install -D -m 0755 "$bin" "$rootfs$dest"
    strip "$rootfs$dest"
    local lib
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
        install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
    done
}

build_pause() {
    local rootfs=$WORK/pause
    base_rootfs "$rootfs"
    gcc -static -Os -Wall -Wextra -Werror -o "$rootfs/pause" "$HUDDLE_ROOT/tests/images/pause/pause.c"
    strip "$rootfs/pause"
    oci_image pause huddle.local/pause:1 "$rootfs" '["/pause"]' '[]' '{}'
}

# workspace_binary NAME: the built binary NAME, or a message saying how to build it.
workspace_binary() {
    local bin=$CARGO_TARGET_DIR/${HUDDLE_CARGO_PROFILE_DIR:-debug}/$1
    [ -x "$bin" ] || die "$bin missing: cargo build -p $1 first"
    echo "$bin"
}

# add_ca_certificates ROOTFS: the trust store HTTPS clients need (the
# distroless and Debian release images have one too).
add_ca_certificates() {
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$1/etc/ssl/certs/ca-certificates.crt"
}

# add_web ROOTFS: the browser UI build (scripts/build-web.sh) at
# /usr/share/huddle/web, where the agent and the gateway look by default.
add_web() {
    local web=$HUDDLE_ROOT/web/dist
    [ -f "$web/index.html" ] || die "$web missing: run scripts/build-web.sh first"
    mkdir -p "$1/usr/share/huddle"
    cp -r "$web" "$1/usr/share/huddle/web"
}

build_agent() {
    local bin
    bin=$(workspace_binary huddle-agent)
    local rootfs=$WORK/agent
    base_rootfs "$rootfs"
    add_binary "$rootfs" "$bin" /usr/local/bin/huddle-agent
    # CA certificates: the agent's HTTPS client (restoring a snapshot, cloning a template)
    # needs a trust store, as the Debian-based release image has.
    add_ca_certificates "$rootfs"
    # The browser UI the agent serves.
    add_web "$rootfs"
    # A shell for the terminals (the release image has bash and the usual tools): Debian's
    # static busybox as /bin/sh, its other programs run as `busybox NAME` (the end-to-end
    # test starts `busybox httpd` in a terminal to serve a forwarded port).
    [ -x /bin/busybox ] || die "/bin/busybox missing: run scripts/install-deps.sh (busybox-static)"
    install -D -m 0755 /bin/busybox "$rootfs/bin/busybox"
    ln -s busybox "$rootfs/bin/sh"
    mkdir -p "$rootfs/workspace"
    chown $NONROOT:$NONROOT "$rootfs/workspace"
    oci_image huddle-agent huddle.local/huddle-agent:dev "$rootfs" '["/usr/local/bin/huddle-agent"]' \
        '["HUDDLE_AGENT_ADDR=0.0.0.0:8080","HUDDLE_WORKSPACE=/workspace"]' '{"8080/tcp":{}}'
}

build_operator() {
    local bin
    bin=$(workspace_binary huddle-operator)
    local rootfs=$WORK/operator
    base_rootfs "$rootfs"
    add_binary "$rootfs" "$bin" /usr/local/bin/huddle-operator
    add_ca_certificates "$rootfs"
    oci_image huddle-operator huddle.local/huddle-operator:dev "$rootfs" '["/usr/local/bin/huddle-operator"]' \
        '["HUDDLE_METRICS_ADDR=0.0.0.0:9090"]' '{"9090/tcp":{}}'
}

build_gateway() {
    local bin
    bin=$(workspace_binary huddle-gateway)
    local rootfs=$WORK/gateway
    base_rootfs "$rootfs"
    add_binary "$rootfs" "$bin" /usr/local/bin/huddle-gateway
    add_ca_certificates "$rootfs"
    # The landing page (and the rest of the build, as in gateway/Dockerfile).
    add_web "$rootfs"
    # The same defaults as gateway/Dockerfile: in a cluster, behind a read-only root with /tmp
    # writable.
    oci_image huddle-gateway huddle.local/huddle-gateway:dev "$rootfs" '["/usr/local/bin/huddle-gateway"]' \
        '["HUDDLE_RUNTIME=kubernetes","HUDDLE_LISTEN=0.0.0.0:8000","HUDDLE_INTERNAL_LISTEN=0.0.0.0:8001","HUDDLE_DATA_DIR=/tmp/huddle","HUDDLE_UPGRADE_SOCKET=/tmp/huddle-gateway-upgrade.sock"]' \
        '{"8000/tcp":{},"8001/tcp":{}}'
}

build_pause
build_agent
build_operator
build_gateway
