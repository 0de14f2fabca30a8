"""ai_core: fairness metrics and SHAP explanations over a tabular dataset (``python -m services.ai_core``)."""
