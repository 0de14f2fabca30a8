"""The EthixAI services ethixctl deploys: ``backend`` and ``ai_core``, with their shared ``common`` parts."""
