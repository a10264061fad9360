# shellcheck shell=bash
# One real node on this host: Debian's containerd, runc and CNI plugins, a
# kubelet and kube-proxy from our pinned build. Pods really run containers, so
# the demo pipeline really moves data.
#
# Images cannot be pulled here (no registry), so every image a pod uses, the
# pause image included, is built locally and imported into containerd's k8s.io
# namespace (`hack/cluster load-image IMAGE`).

NODE_NAME="sluice-node"
# A port-less bridge gives the node an address that pods (behind the CNI
# bridge) and the host can both reach; loopback is not reachable from pods.
NODE_IFACE="sluice0"
NODE_ADDR="10.245.255.1"
POD_CIDR="10.244.0.0/24"
CNI_BRIDGE="sluice-cni0"
PAUSE_IMAGE="sluice.local/pause:3.10"
CONTAINERD_DIR() { echo "$STATE_DIR/containerd"; }
CONTAINERD_SOCK() { echo "$STATE_DIR/containerd/containerd.sock"; }

mode() { cat "$STATE_DIR/mode" 2>/dev/null || echo kwok; }
node_ip() { if [[ "$(mode)" == real ]]; then echo "$NODE_ADDR"; else echo 127.0.0.1; fi; }
apiserver_bind_address() { if [[ "$(mode)" == real ]]; then echo 0.0.0.0; else echo 127.0.0.1; fi; }

ctr_() { ctr --address "$(CONTAINERD_SOCK)" -n k8s.io "$@"; }

require_real_node_packages() {
  local missing=() bin
  for bin in containerd runc ctr dockerd iptables conntrack; do
    command -v "$bin" >/dev/null || missing+=("$bin")
  done
  [[ -x /usr/lib/cni/bridge ]] || missing+=("containernetworking-plugins")
  ((${#missing[@]} == 0)) || die "real-node mode needs: ${missing[*]} (apt-get install containerd runc docker.io containernetworking-plugins iptables conntrack)"
}

# Docker builds the images the node runs; start the Debian daemon if none runs.
ensure_docker() {
  docker info >/dev/null 2>&1 && return 0
  start dockerd dockerd
  wait_for "dockerd" 60 docker info
}

# build_pause_image: the pod sandbox image, a static Go binary that sleeps
# until signalled, since registry.k8s.io/pause cannot be pulled here.
build_pause_image() {
  docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1 && return 0
  log "building $PAUSE_IMAGE"
  local dir; dir="$(mktemp -d)"
  (cd "$HACK_DIR/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$dir/pause" ./main.go)
  tar -C "$dir" -c pause | docker import --change 'ENTRYPOINT ["/pause"]' - "$PAUSE_IMAGE" >/dev/null
  rm -rf "$dir"
}

prepare_real_node_host() {
  require_real_node_packages
  if ! ip link show "$NODE_IFACE" >/dev/null 2>&1; then
    ip link add "$NODE_IFACE" type bridge
    ip addr add "$NODE_ADDR/32" dev "$NODE_IFACE"
    ip link set "$NODE_IFACE" up
  fi
  sysctl -qw net.ipv4.ip_forward=1
  modprobe br_netfilter 2>/dev/null || true
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] && sysctl -qw net.bridge.bridge-nf-call-iptables=1
  ensure_docker
  build_pause_image
}

write_containerd_config() {
  local dir; dir="$(CONTAINERD_DIR)"
  mkdir -p "$dir" "$STATE_DIR/cni/net.d"
  cat >"$dir/config.toml" <<EOF
version = 2
root = "$dir/root"
state = "$dir/state"
[grpc]
  address = "$(CONTAINERD_SOCK)"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Sandboxed hosts (this VM among them) deny lowering oom_score_adj below
  # the parent's; without this every pod sandbox fails in runc's nsexec.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE_DIR/cni/net.d"
EOF
  cat >"$STATE_DIR/cni/net.d/10-sluice.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "sluice",
  "plugins": [
    {
      "type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
               "dataDir": "$STATE_DIR/cni/ipam"}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_kubelet_config() {
  issue_cert kubelet "system:node:$NODE_NAME" system:nodes "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$NODE_ADDR"
  write_kubeconfig "$STATE_DIR/kubelet.kubeconfig" kubelet
  mkdir -p "$STATE_DIR/kubelet"
  cat >"$STATE_DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_ADDR
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$(CONTAINERD_SOCK)
failSwapOn: false
failCgroupV1: false
podCIDR: $POD_CIDR
maxPods: 60
serializeImagePulls: false
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
}

start_real_node() {
  write_containerd_config
  start containerd containerd --config "$(CONTAINERD_DIR)/config.toml"
  wait_for "containerd" 60 ctr_ version
  load_image "$PAUSE_IMAGE"
  write_kubelet_config
  start kubelet "$K8S_BIN/kubelet" \
    --config "$STATE_DIR/kubelet/config.yaml" \
    --kubeconfig "$STATE_DIR/kubelet.kubeconfig" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_ADDR" \
    --root-dir "$STATE_DIR/kubelet/root" --cert-dir "$STATE_DIR/kubelet/pki"
  start kube-proxy "$K8S_BIN/kube-proxy" \
    --kubeconfig "$KUBECONFIG_PATH" --hostname-override "$NODE_NAME" \
    --proxy-mode iptables --cluster-cidr 10.244.0.0/16 \
    --bind-address 127.0.0.1 --healthz-bind-address 127.0.0.1:10256 --metrics-bind-address 127.0.0.1:10249
}

# load_image IMAGE: copy a local Docker image into the node's containerd.
load_image() {
  local image="$1"
  [[ "$(mode)" == real ]] || { log "kwok nodes run no containers; nothing to load"; return 0; }
  docker image inspect "$image" >/dev/null 2>&1 || die "image $image not found in Docker; build it first"
  docker save "$image" | ctr_ images import --no-unpack=false - >/dev/null
  log "loaded $image into $NODE_NAME"
}

cleanup_real_node() {
  # Pod sandboxes outlive the kubelet; stop their shims and unmount what they left.
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -id .* -address $(CONTAINERD_SOCK)" 2>/dev/null || true
  local m
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(awk -v s="$STATE_DIR" '$2 ~ "^"s {print $2}' /proc/mounts | sort -r)
  ip link del "$CNI_BRIDGE" 2>/dev/null || true
  ip link del "$NODE_IFACE" 2>/dev/null || true
  stop dockerd
}

# The apiserver publishes its own address for in-cluster clients; a loopback
# address is not valid there, so kwok mode (no pods run) publishes none.
endpoint_reconciler() { if [[ "$(mode)" == real ]]; then echo lease; else echo none; fi; }
