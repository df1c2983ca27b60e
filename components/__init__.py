"""bluegreen: blue-green releases on Kubernetes with Istio, as Pulumi components.

Pure logic (settings, routes, guards) imports no engine; the components import pulumi.
"""
