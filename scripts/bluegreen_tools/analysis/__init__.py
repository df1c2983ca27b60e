"""The metric analysis of a release: Istio's request metrics in Prometheus gate the flip and trigger the rollback.

queries.py builds the PromQL, prometheus.py sends it (time-limited, size-capped, every failure a typed answer),
decisions.py judges the answers (pure), measure.py ties them into one measurement, gate.py runs the gates the
release phases call (pre_promotion, post_promotion, baseline_of), load.py drives the bounded test load. The
settings are components/analysis.py's (bluegreen:analysis on the routing stack).
"""
