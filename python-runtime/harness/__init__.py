"""A Lambda execution environment emulator for tests: see lambda_env.py."""
