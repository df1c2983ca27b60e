"""The order in which the xdist workers take whole test modules, and how many workers run (tests/conftest.py)."""

# The order in which the workers take whole modules (pytest.ini: --dist loadfile, --no-loadscope-reorder):
# the e2e modules first, longest first (measured), each to the next free worker, for the workers to end together.
E2E_MODULE_ORDER = ("test_release_resume.py", "test_metric_gate.py", "test_release_faults.py", "test_ci_files.py",
                    "test_guards.py", "test_release_stopped.py", "test_release_cycle.py", "test_istio_webhook.py",
                    "test_quickstart.py", "test_cli_contract.py", "test_gateway_xds.py", "test_prometheus.py",
                    "test_istioctl_analyze.py", "test_kubectl_contract.py", "test_rules_webhook.py",
                    "test_policy_pack.py")
E2E_WORKERS = 4  # the e2e scenarios leave the cores idle a third of the time, waiting on the cluster
# The unit tier waits too, about 20 s in all, on the time limits its fault cases run into (test_faults_release,
# test_smoke_test): with a worker per core, a core would idle while its worker waits. A third worker costs its
# start (about 3 CPU-seconds), not the schema models' (SCHEMA_MODULES).
UNIT_WORKERS = 3
# Then the unit modules, longest first (measured), for the free workers to share; a worker whose last e2e
# scenario still runs takes the quickest instead (see PlacedWork). A module not named here runs last.
UNIT_MODULE_ORDER = ("test_faults_release.py", "test_faults_smoke.py", "test_fuzz_config.py", "test_fault_matrix.py",
                     "test_smoke_test.py",
                     "test_release.py", "test_plan.py", "test_program.py", "test_hardening.py", "test_workflows.py",
                     "test_policy.py", "test_sandbox.py", "test_schemas.py", "test_entry_points.py",
                     "test_settings.py", "test_stackfile.py", "test_routes.py", "test_record.py",
                     "test_engine_errors.py", "test_istiod.py", "test_xds.py", "test_xds_gateway.py", "test_analysis.py",
                     "test_release_record.py", "test_plan_inputs.py",
                     "test_release_analysis.py")
RUN_ORDER = E2E_MODULE_ORDER + UNIT_MODULE_ORDER


# The unit modules that load the published schemas (tests/schemas.py): 2.5 CPU-seconds of pydantic class building
# in each process that does. One worker takes them all, so only it pays (tests/test_sandbox.py keeps the list).
SCHEMA_MODULES = ("test_program.py", "test_fuzz_config.py", "test_hardening.py", "test_schemas.py")
