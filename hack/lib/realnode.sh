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
# Cluster DNS: CoreDNS runs as a host process on the node address; pods reach
# it through the kube-dns Service at the conventional ClusterIP (see
# start_cluster_dns for why).
CLUSTER_DOMAIN="cluster.local"
DNS_SERVICE_IP="10.96.0.10"
# CoreDNS's `ready` endpoint, on loopback only. Not its default :8181, which
# dev servers often hold; 102xx is where the kubelet's and kube-proxy's are.
DNS_READY_ADDR="127.0.0.1:10181"
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

# Only one real node fits on a host: the node bridge and address, the kubelet's
# port 10250 and kube-proxy's iptables chains are fixed, whatever the state
# dir. other_kubelet: the pid of a kubelet on the node's port that is not this
# cluster's, if any.
other_kubelet() {
  local pid
  pid="$(ss -Hltnp 'sport = :10250' 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)" || true
  [[ -n "$pid" ]] || return 1
  [[ -f "$PIDS/kubelet.pid" && "$(cat "$PIDS/kubelet.pid")" == "$pid" ]] && return 1
  echo "$pid"
}

# refuse_second_real_node: a second cluster's kubelet would fight the first
# for the node, so refuse, and say whose kubelet holds it. Called before the
# state dir is marked as a real-node one, so `down` there cannot then remove
# the other cluster's bridges.
refuse_second_real_node() {
  local other root_dir
  other="$(other_kubelet)" || return 0
  root_dir="$(tr '\0' ' ' <"/proc/$other/cmdline" 2>/dev/null | grep -o -- '--root-dir [^ ]*' | cut -d' ' -f2)" || true
  die "another real-node cluster's kubelet (pid $other${root_dir:+, root dir $root_dir}) runs on this host; only one real node fits (fixed bridge $NODE_IFACE, address $NODE_ADDR, port 10250, kube-proxy's iptables chains): take that cluster down first (hack/cluster down with its SLUICE_STATE_DIR)"
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
  cat >"$STATE_DIR/kubelet/config.yaml.new" <<EOF
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
# Pods with the default dnsPolicy (ClusterFirst) get this nameserver and the
# <namespace>.svc.$CLUSTER_DOMAIN search path, as on any cluster.
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: $CLUSTER_DOMAIN
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
EOF
  # A kubelet reads its config only at start: one still running with an older
  # config (a cluster from before cluster DNS, say) is restarted. Its pods
  # keep running meanwhile.
  local config="$STATE_DIR/kubelet/config.yaml"
  if ! cmp -s "$config.new" "$config" && pid_alive kubelet; then
    log "the kubelet's config changed; restarting it"
    stop kubelet
  fi
  mv "$config.new" "$config"
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
  start_cluster_dns
}

# --- cluster DNS -------------------------------------------------------------------
#
# CoreDNS runs on the host, like kube-proxy, bound to the node address: no
# image to build, and its upstream is simply the host's resolver (even one on
# loopback, which a pod could not reach). Pods do not use that address
# directly. As on a real cluster, their resolv.conf names the kube-dns Service
# (10.96.0.10), whose EndpointSlice points at the node address, and
# kube-proxy's iptables rules carry the queries there. Tools that look for
# kube-system/kube-dns find it, and the address pods know does not depend on
# how DNS is run.

# apply_dns_objects: CoreDNS's identity (a client certificate for user
# system:coredns, with the read-only rights of upstream's ClusterRole) and the
# kube-dns Service with a hand-written EndpointSlice: the Service has no
# selector, because its endpoint is a host process, not a pod.
apply_dns_objects() {
  issue_cert coredns system:coredns
  write_kubeconfig "$STATE_DIR/coredns.kubeconfig" coredns
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:coredns}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: system:coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS, kubernetes.io/cluster-service: "true"}
spec:
  clusterIP: $DNS_SERVICE_IP
  ports:
  - {name: dns, port: 53, targetPort: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 53, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    # Not the EndpointSlice controller's label, so that controller leaves it alone.
    endpointslice.kubernetes.io/managed-by: hack-cluster.sluice.dev
addressType: IPv4
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
endpoints:
- addresses: [$NODE_ADDR]
  conditions: {ready: true}
  nodeName: $NODE_NAME
EOF
}

write_corefile() {
  mkdir -p "$STATE_DIR/coredns"
  cat >"$STATE_DIR/coredns/Corefile" <<EOF
.:53 {
    # The node address only: whatever else the host runs on port 53 stays untouched.
    bind $NODE_ADDR
    errors
    ready $DNS_READY_ADDR
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $STATE_DIR/coredns.kubeconfig sluice-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    # Every other name: the host's own resolvers.
    forward . /etc/resolv.conf
    cache 30
    loop
    loadbalance
}
EOF
}

# dns_resolves SERVER NAME: SERVER:53 answers an A query for NAME with at
# least one address. Python's standard library, because a minimal host has
# no dig.
dns_resolves() {
  python3 - "$1" "$2" <<'EOF'
import random, socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
qid = random.randrange(65536)
query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # recursion desired, one question
query += b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
query += struct.pack(">HH", 1, 1)  # type A, class IN
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    sock.settimeout(1)
    sock.sendto(query, (server, 53))
    reply = sock.recv(4096)
rid, flags, _, answers = struct.unpack(">HHHH", reply[:8])
sys.exit(0 if rid == qid and flags & 0xF == 0 and answers > 0 else 1)
EOF
}

start_cluster_dns() {
  apply_dns_objects
  write_corefile
  start coredns "$COREDNS_BIN/coredns" -conf "$STATE_DIR/coredns/Corefile"
  # Ready once the kubernetes plugin has synced its first lists.
  wait_for "CoreDNS ready on $DNS_READY_ADDR" 60 curl -fsS "http://$DNS_READY_ADDR/ready"
  # The path pods take: the Service IP, through kube-proxy's rules.
  wait_for "cluster DNS through the kube-dns Service ($DNS_SERVICE_IP)" 60 \
    dns_resolves "$DNS_SERVICE_IP" "kubernetes.default.svc.$CLUSTER_DOMAIN"
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
  local other
  # Pod sandboxes outlive the kubelet; stop their shims and unmount what they
  # left. Each container's first process is its shim's child: killed first,
  # it takes its PID namespace with it (a killed shim alone would leave the
  # container's processes running, reparented to init).
  local shim shims
  shims="$(pgrep -f "containerd-shim-runc-v2 -namespace k8s.io -id .* -address $(CONTAINERD_SOCK)" || true)"
  for shim in $shims; do pkill -KILL -P "$shim" 2>/dev/null || true; done
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -id .* -address $(CONTAINERD_SOCK)" 2>/dev/null || true
  local m
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(awk -v s="$STATE_DIR" '$2 ~ "^"s {print $2}' /proc/mounts | sort -r)
  # The bridges are the host's, not this state dir's: leave them to a real
  # node that another cluster runs now.
  if other="$(other_kubelet)"; then
    log "another cluster's kubelet (pid $other) uses the node bridges; leaving them"
  else
    ip link del "$CNI_BRIDGE" 2>/dev/null || true
    ip link del "$NODE_IFACE" 2>/dev/null || true
  fi
  stop dockerd
}

# The apiserver publishes its own address for in-cluster clients; a loopback
# address is not valid there, so kwok mode (no pods run) publishes none.
endpoint_reconciler() { if [[ "$(mode)" == real ]]; then echo lease; else echo none; fi; }
