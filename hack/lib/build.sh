# shellcheck shell=bash
# Builds the cluster's binaries from pinned Go modules into a versioned cache.
#
# Why a cache keyed by version: a cold Kubernetes build takes many minutes on
# two cores; a warm `hack/cluster up` must start in seconds. Each component is
# built into a temporary directory and renamed into place, so an interrupted
# build never leaves a half-written binary that looks cached.

CACHE_ROOT="${SLUICE_CACHE_DIR:-$HOME/.cache/sluice}"
K8S_BIN="$CACHE_ROOT/k8s-$K8S_VERSION/bin"
ETCD_BIN="$CACHE_ROOT/etcd-$ETCD_VERSION/bin"
KWOK_BIN="$CACHE_ROOT/kwok-$KWOK_VERSION/bin"
HELM_BIN="$CACHE_ROOT/helm-$HELM_VERSION/bin"
COREDNS_BIN="$CACHE_ROOT/coredns-$COREDNS_VERSION/bin"
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy)

# go_build_with_progress LABEL ARGS...: `go build -v` prints each package as it
# compiles; show a running count instead of a silent terminal.
go_build_with_progress() {
  local label="$1"; shift
  local start=$SECONDS
  go build -v "$@" 2>&1 | awk -v label="$label" -v start="$start" '
    /^[A-Za-z0-9._~\/-]+$/ { n++; if (n % 100 == 0) { printf("[build] %s: %d packages compiled\n", label, n); fflush() }; next }
    { print; fflush() }
  '
  local rc=${PIPESTATUS[0]}
  log "$label: go build finished in $((SECONDS - start))s (rc=$rc)"
  return "$rc"
}

require_go() {
  command -v go >/dev/null || die "Go is required to build the cluster binaries (apt-get install golang, or see README)"
}

build_k8s() {
  local missing=0 cmd
  for cmd in "${K8S_COMMANDS[@]}"; do [[ -x "$K8S_BIN/$cmd" ]] || missing=1; done
  ((missing)) || return 0
  require_go
  grep -q "k8s.io/kubernetes $K8S_VERSION\$" "$HACK_DIR/k8s/go.mod" ||
    die "hack/k8s/go.mod does not require k8s.io/kubernetes $K8S_VERSION; run hack/k8s/regen-gomod.sh"
  log "building Kubernetes $K8S_VERSION (${K8S_COMMANDS[*]}); a cold build takes about 8 minutes on 2 cores, module downloads included"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local pkg="k8s.io/component-base/version" cgo="k8s.io/client-go/pkg/version"
  local ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ldflags+=" -X $cgo.gitVersion=$K8S_VERSION -X $cgo.gitMajor=1 -X $cgo.gitMinor=$minor"
  local tmp="$K8S_BIN.tmp.$$" pkgs=()
  for cmd in "${K8S_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
  mkdir -p "$tmp"
  (cd "$HACK_DIR/k8s" && go_build_with_progress kubernetes -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  mkdir -p "$(dirname "$K8S_BIN")"; rm -rf "$K8S_BIN"; mv "$tmp" "$K8S_BIN"
}

build_etcd() {
  [[ -x "$ETCD_BIN/etcd" ]] && return 0
  require_go
  grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION\$" "$HACK_DIR/etcd/go.mod" ||
    die "hack/etcd/go.mod does not require etcd $ETCD_VERSION; update it to match hack/versions.env"
  log "building etcd $ETCD_VERSION"
  local tmp="$ETCD_BIN.tmp.$$"
  mkdir -p "$tmp"
  (cd "$HACK_DIR/etcd" && go_build_with_progress etcd -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$ETCD_BIN"; mv "$tmp" "$ETCD_BIN"
}

# go_install_pinned NAME BIN_DIR PACKAGE@VERSION: for modules without replace lines.
go_install_pinned() {
  local name="$1" dir="$2" pkg="$3"
  [[ -x "$dir/$name" ]] && return 0
  require_go
  log "building $pkg"
  local tmp="$dir.tmp.$$" start=$SECONDS
  mkdir -p "$tmp"
  GOBIN="$tmp" GOFLAGS=-trimpath go install -ldflags "-s -w" "$pkg"
  rm -rf "$dir"; mv "$tmp" "$dir"
  log "$name built in $((SECONDS - start))s"
}

# build_all [DNS]: every binary; CoreDNS only when DNS is "yes" (the default):
# it serves real nodes only, so a kwok cluster's cold start does not wait for it.
build_all() {
  local dns="${1:-yes}"
  mkdir -p "$CACHE_ROOT"
  # One build at a time: CI and a developer's shell may race on a cold cache.
  exec 9>"$CACHE_ROOT/.build.lock"
  flock 9
  build_k8s
  build_etcd
  go_install_pinned kwok "$KWOK_BIN" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  go_install_pinned helm "$HELM_BIN" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  # CoreDNS's module has no replace lines (unlike Kubernetes' and etcd's), so
  # `go install module@version` builds it from its own go.sum, no wrapper module.
  if [[ "$dns" == yes ]]; then
    go_install_pinned coredns "$COREDNS_BIN" "github.com/coredns/coredns@$COREDNS_VERSION"
  fi
  flock -u 9
}
