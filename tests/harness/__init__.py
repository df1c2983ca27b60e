"""The test harness: what the tests run the product against, never a test itself.

fake_pulumi.py (the stand-in `pulumi`, held to the real CLI by tests/e2e/test_cli_contract.py), loopback.py
(real HTTP servers on 127.0.0.1), release_world.py (a release's world: stacks, gateway, apps), fault_matrix.py and
fault_outcomes.py (hostile inputs and how they must end), schemas.py (the published schemas' loaders),
sandbox_project.py and released_project.py (throwaway copies of the project run by the real CLI in the sandbox).
"""
