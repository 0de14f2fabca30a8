"""The EthixAI backend: users, datasets, fairness analyses (delegated to ai_core)."""
