"""Parts both services share: settings, metrics and fault injection, the uvicorn runner."""
