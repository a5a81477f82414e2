"""Rolling upgrades: seeded plans, a live executor and the same plan on the model, invariants, shrinking."""
