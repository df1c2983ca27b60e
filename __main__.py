"""bluegreen: one program, three stacks (blue, green, routing); the stack's config picks its role."""

import pulumi

from components.program import main

pulumi.run(main)
