# Sourced by every deploy pipeline's prologue, after `checkout`: the pinned Pulumi CLI, its release tarball's
# checksum verified (.semaphore/install-pulumi.sh), and the virtualenvs of the program and the policy pack
# (Pulumi.yaml and PulumiPolicy.yaml name them venv), installed from the hash-pinned locks.
set -euo pipefail
sem-version python 3.11
bash .semaphore/install-pulumi.sh
export PATH="$HOME/.pulumi/bin:$PATH"
python -m venv venv
venv/bin/python -m pip install --quiet --require-hashes -r requirements.lock
venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .  # the project's packages (pyproject.toml)
python -m venv policy/venv
policy/venv/bin/python -m pip install --quiet --require-hashes -r policy/requirements.lock
export PATH="$PWD/venv/bin:$PATH"  # scripts/release.py runs with the program's requirements
# release.py holds its release record (a Lease) through kubectl, against the cluster of $KUBECONFIG.
command -v kubectl >/dev/null || { echo "prologue: kubectl is not on PATH: release.py needs it for its release record" >&2; exit 1; }
set +euo pipefail  # Semaphore runs the job's commands in this same shell
