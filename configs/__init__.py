"""The shipped configs, installed with the package as alexnet.configs (pyproject.toml maps this folder there):
`alexnet train --config demo` reads demo.yaml from here, from any directory (alexnet/config.py, find_config)."""
