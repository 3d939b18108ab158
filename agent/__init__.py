"""The episode: controllers, guards, the VLM client, tracing and cost accounting."""
