# Sourced by every deploy pipeline's prologue, after `checkout`: the pinned Pulumi CLI and the
# virtualenvs of the program and the policy pack (Pulumi.yaml and PulumiPolicy.yaml name them venv).
set -euo pipefail
sem-version python 3.11
PULUMI_VERSION=3.272.0  # the CLI release of the pinned pulumi SDK (requirements.txt)
if ! pulumi version 2>/dev/null | grep -qx "v$PULUMI_VERSION"; then
  curl -fsSL https://get.pulumi.com | sh -s -- --version "$PULUMI_VERSION"
fi
export PATH="$HOME/.pulumi/bin:$PATH"
python -m venv venv
venv/bin/python -m pip install --quiet -r requirements.txt
python -m venv policy/venv
policy/venv/bin/python -m pip install --quiet -r policy/requirements.txt
export PATH="$PWD/venv/bin:$PATH"  # scripts/release.py runs with the program's requirements
set +euo pipefail  # Semaphore runs the job's commands in this same shell
