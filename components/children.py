"""How this program's components are built, as Pulumi's component guidelines shape them.

Each component is a pulumi.ComponentResource with the type token `bluegreen:<module>:<Type>`, taken
as `(name, args, opts)`. It hands `opts` to ComponentResource only, names its children from its own name,
gives each `child_options(self, ...)`, and calls `register_outputs` last. What other components need from
it (a name, a host, the subsets) are its public Outputs, under the names it registers, and what it needs
from others are Inputs in its args: the engine orders the objects by that data, not by `depends_on`.

Why not the caller's options on every child: the SDK already passes a parent's providers and `protect` to
its children and runs the parent's transformations on them, so copying the options would run a caller's
transformation twice and put `ignore_changes`, `retain_on_delete` or `aliases` meant for the component on
every child.

Renames: a resource's URN is made of its parent's type token, its own type token and its logical name.
Changing any of them (renaming a component, its type token, a child's logical name) makes the next
`pulumi up` replace the live Kubernetes object, unless the renamed resource lists its old URN in
`opts.aliases` (pulumi.Alias(name=..., type_=...)) in the same change; an aliased component's children
follow it without aliases of their own. The Kubernetes names (metadata.name, from components/contract.py)
are always explicit, so they never change with a logical name. tests/test_program.py pins the URNs.
"""

from __future__ import annotations

import pulumi


def child_options(component: pulumi.ComponentResource, **options) -> pulumi.ResourceOptions:
    """A child's options: parented to the component, plus what the component itself means for this child
    (e.g. delete_before_replace for a Job whose fixed name must be free first)."""
    return pulumi.ResourceOptions(parent=component, **options)
