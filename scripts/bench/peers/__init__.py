"""Peer OIP servers (MLServer, KServe) for scripts/bench/agent_http.py, and the client that drives them."""
