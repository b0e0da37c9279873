"""Training of the digit classifiers in numpy; `python3 -m train --help` lists the settings."""
