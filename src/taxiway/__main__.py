"""`python -m taxiway` runs the command line."""

from taxiway.cli.app import entrypoint

if __name__ == "__main__":
    entrypoint()
