"""Shim for `direid-test`: see direid_plugin/cli/test.py."""
from launch import run

if __name__ == "__main__":
    run("test")
