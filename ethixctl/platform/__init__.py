"""The local platform started by `ethixctl up`: control plane, runtime, router, Prometheus."""
