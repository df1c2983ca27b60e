"""How this program's components are built, as Pulumi's component guidelines shape them.

Each component is a pulumi.ComponentResource with the type token `bluegreen:<module>:<Type>`, taken
as `(name, args, opts)`. It names its children from its own name, gives each `child_options(self, opts)`,
and calls `register_outputs` last. Its public attributes are the Outputs it registers, under the same
names; its children are not public: a caller that must wait for them depends on the component.

Renames: a resource's URN is made of its parent's type token, its own type token and its logical name.
Changing any of them (renaming a component, its type token, a child's logical name) makes the next
`pulumi up` replace the live Kubernetes object, unless the renamed resource lists its old URN in
`opts.aliases` (pulumi.Alias(name=..., type_=...)) in the same change; an aliased component's children
follow it without aliases of their own. The Kubernetes names (metadata.name, from components/contract.py)
are always explicit, so they never change with a logical name. tests/test_program.py pins the URNs.
"""

from __future__ import annotations

import copy
from typing import Optional

import pulumi


def child_options(component: pulumi.ComponentResource, opts: Optional[pulumi.ResourceOptions],
                  **options) -> pulumi.ResourceOptions:
    """A child's options: the caller's (depends_on, provider, protect...) merged with `options`, parented
    to the component. Not the caller's aliases: they are the component's old names, not its children's."""
    inherited = copy.copy(opts) if opts is not None else pulumi.ResourceOptions()
    inherited.aliases = None
    return pulumi.ResourceOptions.merge(inherited, pulumi.ResourceOptions(parent=component, **options))
