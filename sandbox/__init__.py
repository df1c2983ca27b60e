"""The sandbox: the real Pulumi CLI, provider and Kubernetes control plane, built from their published Go
modules (one module per group of pieces under this folder: the pins), started on 127.0.0.1 for the e2e tier.

    python -m sandbox build | up --env-file FILE | down --env-file FILE     (sandbox/__main__.py)

build.py makes the pieces into a cache outside the repo; cluster.py starts and stops them; gateway.py is the
ingress gateway and app stand-in: an xDS client of istiod that routes by the config istiod pushes (it emulates
Envoy's forwarding and the pods; it is neither).
"""
