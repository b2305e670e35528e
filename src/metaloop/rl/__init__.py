"""RL machinery shared by the meta-RL algorithms: batched rollouts, returns and baselines, TRPO."""
