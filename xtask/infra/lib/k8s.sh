# shellcheck shell=bash
# The Kubernetes manifest checkers, pinned, without a cluster: kustomize (built from the
# Go module proxy) renders the base and the overlays; kubernetes-validate (PyPI, in the
# Envoy venv) checks what it renders against the OpenAPI schemas of one Kubernetes
# version, shipped in the package: unknown fields, wrong types and missing required
# fields are errors.

KUSTOMIZE_BIN="$INFRA_DIR/bin/kustomize"
KUBEVAL_BIN="$INFRA_DIR/bin/kubernetes-validate"

k8s_is_installed() {
  local v
  v="$("$KUSTOMIZE_BIN" version 2>/dev/null)" || return 1
  [[ "$v" == "v$KUSTOMIZE_VERSION" ]] || return 1
  v="$("$ENVOY_VENV/bin/pip" show kubernetes-validate 2>/dev/null | sed -n 's/^Version: //p')"
  [[ "$v" == "$KUBERNETES_VALIDATE_VERSION" && -x "$KUBEVAL_BIN" ]]
}

k8s_install() {
  if k8s_is_installed; then
    log "k8s: kustomize v$KUSTOMIZE_VERSION and kubernetes-validate $KUBERNETES_VALIDATE_VERSION already installed"
    return 0
  fi
  local go ilog="$INFRA_DIR/k8s/log/install.log"
  mkdir -p "$INFRA_DIR/k8s/log" "$INFRA_DIR/bin"
  : >"$ilog"
  go="$(find_go)" || die "k8s: the Go toolchain is needed to build kustomize; install Go and retry"
  log "k8s: go install kustomize v$KUSTOMIZE_VERSION (first time: ~2-4 min; log: $ilog)"
  GOBIN="$INFRA_DIR/bin" GO111MODULE=on "$go" install \
    "sigs.k8s.io/kustomize/kustomize/v5@v$KUSTOMIZE_VERSION" >>"$ilog" 2>&1 ||
    die_with_log "k8s: go install kustomize failed" "$ilog"
  envoy_venv
  log "k8s: pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  "$ENVOY_VENV/bin/pip" install --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >>"$ilog" 2>&1 ||
    die_with_log "k8s: pip install kubernetes-validate failed" "$ilog"
  ln -sfn "$ENVOY_VENV/bin/kubernetes-validate" "$KUBEVAL_BIN"
  k8s_is_installed || die_with_log "k8s: the checkers do not report the pinned versions after install" "$ilog"
}

k8s_check() {
  k8s_is_installed || die "k8s: not installed (run: infra.sh install k8s)"
  "$KUSTOMIZE_BIN" version
  "$KUBEVAL_BIN" --version
}
