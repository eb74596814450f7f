"""nodeforge: build, verify and catalog custom Amazon EKS worker-node images."""

__version__ = "0.1.0"
