"""Allow ``python -m bfctl`` so the CLI works without the console script."""

from bfctl.entry import main

if __name__ == "__main__":
    main()
