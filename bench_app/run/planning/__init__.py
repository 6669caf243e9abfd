"""What a run will do, worked out before any server starts: the plan, the context budget, the probes'
samples, the engine's identity, load levels, repeats, the devices (and what SLURM granted)."""
