"""Between the evaluator and the server: the loopback relay (proxy), its balancer over replicas, its one
writer thread and what an answer says."""
