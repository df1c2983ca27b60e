"""Being written this session; the coordinator removes it if it stays empty."""
