"""The `jaxseg` command and `python main.py`: flags (main), the modes they dispatch to (modes), and the
comparison of finished runs (compare)."""
