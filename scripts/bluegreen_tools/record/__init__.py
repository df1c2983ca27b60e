"""The release record: who runs which release, in which phase, held by compare-and-swap in a Kubernetes
Lease so that two releases never interleave and a dead run's release is resumed or aborted from any host."""

from .kubectl import Kubectl, KubectlError
from .lease import (ANNOTATION, DURATION, Held, Lease, LeaseStore, LostCas, RecordError, ReleaseRecord,
                    user_at_host)
from .phases import Intent, PhaseError, Plan, Routing, Step, abort_plan, resume_plan
from .renewal import HeldRecord

__all__ = ["ANNOTATION", "DURATION", "Held", "HeldRecord", "Intent", "Kubectl", "KubectlError", "Lease",
           "LeaseStore", "LostCas", "PhaseError", "Plan", "RecordError", "ReleaseRecord", "Routing", "Step",
           "abort_plan", "resume_plan", "user_at_host"]
